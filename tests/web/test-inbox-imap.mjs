// SPDX-License-Identifier: Apache-2.0
// test-inbox-imap.mjs - the Inbox over IMAP in Chromium: alice sends a
// Level 1 message by SMTP submission through the test suite's real Postfix
// (`qumail send`), bob's web client lists his Dovecot mailbox over IMAPS
// (encrypted, unread), bob opens it in the browser over IMAP (subject,
// body), `qumail read` then shows it from the read store the page filled,
// and the Inbox shows its real subject; the message on the server is the
// encrypted outer message only.
//
// Usage: node test-inbox-imap.mjs QUMAIL WORKDIR ARTIFACTS (testbed.env and
// mailservers.env in the environment: tests/web/browser-test under
// tests/mail/run-with-mailservers)
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { browser, check, cleanup, startWeb, summary } from './browser.mjs';

const [qumail, work] = process.argv.slice(2);
const env = process.env;
const SUBJECT = 'Über IMAP: Grüße';

// The testbed's configs with mail through the servers (as tests/mail/transport-test).
function configs() {
  const alice = path.join(work, 'alice-smtp.conf'), bob = path.join(work, 'bob-imap.conf');
  writeFileSync(alice, readFileSync(env.QUMAIL_CONFIG_A1, 'utf8').replace(/^send = maildir$/m, 'send = smtp') +
    `\n[smtp]\nurl = ${env.SMTP_URL}\nusername = ${env.MAIL_ALICE}\n` +
    `password_file = ${env.MAIL_ALICE_PASSWORD_FILE}\nca = ${env.MAIL_CA}\n`);
  writeFileSync(bob, readFileSync(env.QUMAIL_CONFIG_B1, 'utf8').replace(/^inbox = maildir$/m, 'inbox = imap') +
    `\n[imap]\nurl = ${env.IMAPS_URL}\nusername = ${env.MAIL_BOB}\n` +
    `password_file = ${env.MAIL_BOB_PASSWORD_FILE}\nca = ${env.MAIL_CA}\n`);
  return { alice, bob };
}

async function rowsText(page) {
  return page.$$eval('table.inbox tbody tr', (trs) => trs.map((tr) => tr.textContent));
}

async function main() {
  const conf = configs();
  const message = `From: alice@example.org\r\nTo: bob@example.org\r\n` +
    `Subject: =?UTF-8?B?${Buffer.from(SUBJECT).toString('base64')}?=\r\n` +
    `MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSecret body line.\r\n`;
  execFileSync(qumail, ['--config', conf.alice, 'send', '--level', '1'], { input: message, stdio: ['pipe', 'ignore', 'pipe'] });

  const web = await startWeb(qumail, conf.bob, work, 'bob-imap');
  const ctx = await browser();
  const page = await ctx.newPage();
  const first = await page.goto(web.url);
  let rows = await rowsText(page);
  check('the IMAP inbox answers 200', first.status() === 200, first.status());
  // Delivery through Postfix to Dovecot may take a moment: reload until it is there.
  for (let i = 0; rows.length === 0 && i < 50; i++) {
    await new Promise((r) => setTimeout(r, 200));
    await page.reload();
    rows = await rowsText(page);
  }
  check('one row: alice, Encrypted, Level 1, Unread',
        rows.length === 1 && /alice@example\.org/.test(rows[0]) && /Encrypted/.test(rows[0]) &&
        /Level 1/.test(rows[0]) && /Unread/.test(rows[0]), JSON.stringify(rows));
  const raw = execFileSync('curl', ['-s', '--cacert', env.MAIL_CA, '-u',
    `${env.MAIL_BOB}:${readFileSync(env.MAIL_BOB_PASSWORD_FILE, 'utf8').trim()}`,
    `${env.IMAPS_URL}/INBOX;UID=1`]).toString();
  check('the message on the IMAP server holds neither subject nor body in clear',
        raw.includes('multipart/encrypted') && !raw.includes('Secret body') && !raw.includes('IMAP: Gr') &&
        !raw.includes(Buffer.from(SUBJECT).toString('base64')), raw.slice(0, 200));

  // Read in the browser (the IMAP UID is the ID), then `qumail read` finds it
  // in the same read store: one implementation, one store.
  await page.click('table.inbox tbody tr a');
  await page.waitForURL(/\/message\/1$/);
  check('opened over IMAP: the subject, the body, Level 1',
        (await page.textContent('h1')) === SUBJECT &&
        (await page.textContent('main')).includes('Secret body line.') &&
        (await page.textContent('p.level')) === 'Level 1');
  // (its keys are spent: a second decryption would fail with exit 6)
  const cli = execFileSync(qumail, ['--config', conf.bob, 'read', '1'],
                           { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  check('qumail read then shows it from the read store the page filled',
        cli.includes('Secret body line.'));
  await page.goto(`${web.base}/`);
  rows = await rowsText(page);
  check('after reading over IMAP: the real subject and "Read"',
        rows.length === 1 && rows[0].includes(SUBJECT) && !/Unread/.test(rows[0]), JSON.stringify(rows));
}

try {
  await main();
} catch (e) {
  check('the test ran to its end', false, e.stack || e);
} finally {
  await cleanup();
}
process.exit(summary() ? 0 : 1);
