// SPDX-License-Identifier: Apache-2.0
// test-inbox.mjs - bob's Inbox in Chromium, on the testbed: a Level 1
// message from alice (sent with `qumail send`) listed as encrypted and
// unread, then, after bob read it with `qumail read`, with its real
// non-ASCII subject; hostile subjects shown as text, never as markup;
// newest first; paging; and listing with KME-B stopped (no key is used).
// The Keys panel: bob's KME status for alice, then "KME unreachable".
//
// Usage: node test-inbox.mjs QUMAIL WORKDIR ARTIFACTS (testbed.env in the
// environment: tests/web/browser-test)
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync, utimesSync } from 'node:fs';
import path from 'node:path';
import { browser, check, cleanup, startWeb, summary } from './browser.mjs';

const [qumail, work, artifacts] = process.argv.slice(2);
const env = process.env;
mkdirSync(artifacts, { recursive: true });
const bobNew = path.join(env.QUMAIL_MAILDIR_ROOT, 'bob@example.org', 'new');
const SUBJECT = 'Grüße aus Wien <img src=x id=pwn1>';
const HOSTILE = '<script>document.title="pwned"</script><b id=pwn2>bold</b>';

// A plain (not QuMail) message dropped into bob's Maildir, mtime ago s.
function dropPlain(name, subject, ago) {
  mkdirSync(bobNew, { recursive: true });
  const file = path.join(bobNew, name);
  writeFileSync(file, `From: mallory@evil.example\r\nTo: bob@example.org\r\n` +
    `Date: Mon, 7 Dec 2026 00:00:00 +0000\r\nSubject: ${subject}\r\n` +
    `Message-ID: <${name}@evil.example>\r\n\r\nhello\r\n`);
  const t = Date.now() / 1000 - ago;
  utimesSync(file, t, t);
}

function qm(config, args, input) {
  return execFileSync(qumail, ['--config', config, ...args],
                      { input, stdio: ['pipe', 'pipe', 'pipe'] });
}

async function rowsText(page) {
  return page.$$eval('table.inbox tbody tr', (trs) => trs.map((tr) => tr.textContent));
}

async function main() {
  dropPlain('1000000000.hostile.example', HOSTILE, 7200);
  const message = `From: alice@example.org\r\nTo: bob@example.org\r\n` +
    `Subject: =?UTF-8?B?${Buffer.from(SUBJECT).toString('base64')}?=\r\n` +
    `MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nDear Bob,\r\nsee you.\r\n`;
  qm(env.QUMAIL_CONFIG_A1, ['send', '--level', '1'], message);

  const web = await startWeb(qumail, env.QUMAIL_CONFIG_B1, work, 'bob');
  const ctx = await browser();
  const page = await ctx.newPage();
  await page.goto(web.url);
  let rows = await rowsText(page);
  check('two rows, one per message', rows.length === 2, JSON.stringify(rows));
  check('newest first: alice\'s message, encrypted, Level 1, unread',
        /alice@example\.org/.test(rows[0]) && /Encrypted/.test(rows[0]) &&
        /Level 1/.test(rows[0]) && /Unread/.test(rows[0]), rows[0]);
  check('its subject is not shown before it is read', !rows[0].includes('Grüße'), rows[0]);
  check('plain mail is marked not protected and shows its subject as text',
        /Not protected \(not QuMail\)/.test(rows[1]) && rows[1].includes(HOSTILE), rows[1]);
  check('no markup from a subject: no script, no element from it',
        (await page.$('#pwn2')) === null && (await page.$('table.inbox script')) === null &&
        (await page.title()) !== 'pwned');
  check('the header row has no links', (await page.$$('table.inbox thead a')).length === 0);

  // Keys: the KME's status for each contact, asked on each view.
  await page.getByRole('link', { name: 'Keys', exact: true }).click();
  await page.waitForURL(`${web.base}/keys`);
  const keyRows = await page.$$eval('table.keys tbody tr', (trs) =>
    trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)));
  const aliceRow = keyRows.find((r) => r[0] === 'alice@example.org');
  check('Keys: a row for alice with stored keys, their size and both KME IDs',
        aliceRow && Number(aliceRow[2]) > 0 && aliceRow[3] === '256 bits' &&
        aliceRow[4] === `${env.KME_B_ID} to ${env.KME_A_ID}`, JSON.stringify(keyRows));

  qm(env.QUMAIL_CONFIG_B1, ['read', '2']);   // CLI numbering: oldest first
  execFileSync(env.TESTBED_SCRIPT, ['stop', env.TESTBED_DIR, 'kme-b'], { stdio: 'ignore' });
  await page.reload();
  check('Keys with KME-B stopped: "KME unreachable" in words, no numbers',
        /KME unreachable/.test(await page.textContent('table.keys tbody')));
  await page.goto(`${web.base}/`);
  const again = await page.reload();
  rows = await rowsText(page);
  check('with KME-B stopped the inbox still lists (no key, no KME call)',
        again.status() === 200 && rows.length === 2, again.status());
  check('once read: the real non-ASCII subject, as text, and "Read"',
        rows[0].includes(SUBJECT) && /Read/.test(rows[0]) && !/Unread/.test(rows[0]), rows[0]);
  check('no element from the read subject', (await page.$('#pwn1')) === null);
  await page.screenshot({ path: path.join(artifacts, 'inbox.png') });

  for (let i = 0; i < 55; i++)
    dropPlain(`100000${1000 + i}.plain.example`, `Plain ${i}`, 3600 - i);
  await page.reload();
  rows = await rowsText(page);
  check('57 messages: the first page has 50 rows', rows.length === 50, rows.length);
  check('the page says 57 messages', (await page.textContent('main')).includes('57 messages'));
  await page.getByRole('link', { name: 'Older' }).first().click();
  await page.waitForURL(`${web.base}/?page=2`);
  rows = await rowsText(page);
  check('page 2 has the 7 oldest, the hostile one last',
        rows.length === 7 && rows[6].includes(HOSTILE), rows.length);
  for (const bad of ['3', '0', 'abc', '-1', '2x'])
    check(`?page=${bad}: 404`, (await page.goto(`${web.base}/?page=${bad}`)).status() === 404);
}

try {
  await main();
} catch (e) {
  check('the test ran to its end', false, e.stack || e);
} finally {
  await cleanup();
}
process.exit(summary() ? 0 : 1);
