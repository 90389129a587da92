// SPDX-License-Identifier: Apache-2.0
// test-read.mjs - bob reads in Chromium what alice sent with `qumail send`,
// on the testbed: a Level 1 and a Level 2 message with a non-ASCII subject
// and two attachments (one a 300 kB binary) are listed as encrypted, open
// with subject, body and "Level N", download byte for byte, and open again
// with KME-B stopped (from the read store: no KME call); their Maildir
// files hold neither subject nor body in clear.  A tampered copy shows the
// tamper warning and no plaintext; a message whose keys another
// configuration took from the KME, and one this account decrypted with
// `qumail decrypt`, show "Key already used"; a hostile HTML part runs no
// script and makes no request (a listener on another port counts them).
// Screenshots: read-inbox.png, message.png.
//
// Usage: node test-read.mjs QUMAIL WORKDIR ARTIFACTS (testbed.env in the
// environment: tests/web/browser-test)
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { browser, check, cleanup, startWeb, summary } from './browser.mjs';

const [qumail, work, artifacts] = process.argv.slice(2);
const env = process.env;
// Chromium saves a download under its own name only if the locale can
// spell it: browser-test runs under LC_ALL=C, where "Übersicht.txt"
// would become "download".
env.LC_ALL = 'C.UTF-8';
mkdirSync(artifacts, { recursive: true });
const bobNew = path.join(env.QUMAIL_MAILDIR_ROOT, 'bob@example.org', 'new');
const SUBJECT = 'Grüße aus Zürich – Bericht';
const BODY = 'Dear Bob,\r\nthe figures are attached.\r\nAlice';
const BIG = randomBytes(300 * 1000);
const SMALL = Buffer.from('Übersicht: 1, 2, 3\n', 'utf8');

function b64lines(buf) {
  return buf.toString('base64').replace(/.{76}/g, '$&\r\n');
}

// A complete inner message: text body, optional HTML part, attachments.
function message({ subject, body, html, attachments = [] }) {
  const enc = `=?UTF-8?B?${Buffer.from(subject).toString('base64')}?=`;
  let m = `From: alice@example.org\r\nTo: bob@example.org\r\nSubject: ${enc}\r\n` +
    'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="m1"\r\n\r\n--m1\r\n';
  if (html) {
    m += 'Content-Type: multipart/alternative; boundary="m2"\r\n\r\n--m2\r\n' +
      `Content-Type: text/plain; charset=utf-8\r\n\r\n${body}\r\n--m2\r\n` +
      `Content-Type: text/html; charset=utf-8\r\n\r\n${html}\r\n--m2--\r\n`;
  } else {
    m += `Content-Type: text/plain; charset=utf-8\r\n\r\n${body}\r\n`;
  }
  for (const a of attachments)
    m += `--m1\r\nContent-Type: application/octet-stream\r\n` +
      `Content-Disposition: attachment; filename*=UTF-8''${encodeURIComponent(a.name)}\r\n` +
      `Content-Transfer-Encoding: base64\r\n\r\n${b64lines(a.bytes)}\r\n`;
  return m + '--m1--\r\n';
}

function qm(config, args, input) {
  return execFileSync(qumail, ['--config', config, ...args],
                      { input, stdio: ['pipe', 'pipe', 'pipe'] });
}

// alice sends at level; the new Maildir ID of bob's copy.
function send(level, msg) {
  const before = new Set(readdirSync(bobNew, { withFileTypes: false }).filter(Boolean));
  qm(env.QUMAIL_CONFIG_A1, ['send', '--level', String(level)], msg);
  const ids = readdirSync(bobNew).filter((f) => !before.has(f));
  if (ids.length !== 1) throw new Error(`expected one new message, got ${ids.length}`);
  return ids[0];
}

// One base64 character in the middle of the data part changed: the
// ciphertext no longer matches its tag.
function tamper(id) {
  const file = path.join(bobNew, id);
  const lines = readFileSync(file, 'latin1').split('\n');
  const data = lines.map((l, i) => [l, i]).filter(([l]) => /^[A-Za-z0-9+/]{60,}\r?$/.test(l));
  const [line, i] = data[Math.floor(data.length * 0.6)];
  const c = line[10];
  lines[i] = line.slice(0, 10) + (c === 'A' ? 'B' : 'A') + line.slice(11);
  writeFileSync(file, lines.join('\n'), 'latin1');
}

// A listener on another port of 127.0.0.1 that counts what reaches it.
function counter() {
  const hits = [];
  const server = http.createServer((req, res) => {
    hits.push(req.url);
    res.writeHead(200, { 'Content-Type': 'image/png' });
    res.end();
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, hits })));
}

async function rowsText(page) {
  return page.$$eval('table.inbox tbody tr', (trs) => trs.map((tr) => tr.textContent));
}

async function download(page, name) {
  const [dl] = await Promise.all([page.waitForEvent('download'),
                                  page.getByRole('link', { name, exact: true }).click()]);
  return { name: dl.suggestedFilename(), bytes: readFileSync(await dl.path()) };
}

async function openMessage(page, web, id, level) {
  await page.goto(`${web.base}/`);
  await page.click(`table.inbox a[href="/message/${id}"]`);
  await page.waitForURL(`${web.base}/message/${id}`);
  const text = await page.textContent('main');
  check(`Level ${level}: the page shows the subject as its heading`,
        (await page.textContent('h1')) === SUBJECT, await page.textContent('h1'));
  check(`Level ${level}: the body`, text.includes('the figures are attached.'), text.slice(0, 300));
  check(`Level ${level}: the page says "Level ${level}"`,
        (await page.textContent('p.level')) === `Level ${level}`);
  check(`Level ${level}: decrypted now with keys from the KME`,
        text.includes('decrypted now with keys from the KME'));
  const sec = await page.textContent('section.security');
  check(`Level ${level}: Security details name the SAEs, a key ID, the KME, integrity`,
        sec.includes('SAE_A1') && sec.includes('SAE_B1') && sec.includes(env.KME_B_ID) &&
        /[0-9a-f]{8}-[0-9a-f]{4}-/.test(sec) && /Integrity verified\s*Yes/.test(sec), sec);
  for (const name of ['Reply', 'Reply all', 'Forward']) {
    const link = page.getByRole('link', { name, exact: true });
    check(`Level ${level}: a "${name}" link`, (await link.count()) === 1);
  }
  check(`Level ${level}: Reply goes to /compose?reply=ID`,
        (await page.getByRole('link', { name: 'Reply', exact: true }).getAttribute('href')) ===
        `/compose?reply=${encodeURIComponent(id).replace(/,/g, '%2C')}`);
  const small = await download(page, 'Übersicht.txt');
  check(`Level ${level}: the second attachment too, with its non-ASCII name`,
        small.name === 'Übersicht.txt' && small.bytes.equals(SMALL), small.name);
  const big = await download(page, 'data.bin');
  check(`Level ${level}: the 300 kB attachment downloads byte for byte`,
        big.name === 'data.bin' && big.bytes.equals(BIG), `${big.name} ${big.bytes.length}`);
  const raw = readFileSync(path.join(bobNew, id));
  check(`Level ${level}: the Maildir file holds neither subject nor body in clear`,
        !raw.includes(Buffer.from(SUBJECT)) && !raw.includes(Buffer.from('figures are attached')) &&
        !raw.includes(Buffer.from(Buffer.from(SUBJECT).toString('base64'))));
}

async function hostileHtml(page, web, ctx, id, hits) {
  const requests = [];   // that got an answer (a request CSP blocked fails)
  ctx.on('requestfinished', (r) => requests.push(r.url()));
  await page.goto(`${web.base}/message/${id}`);
  const frameEl = await page.waitForSelector('iframe.html-part');
  const frame = await frameEl.contentFrame();
  await frame.waitForLoadState('load');
  await page.waitForTimeout(500);   // let anything that would load, load (it must not)
  check('hostile HTML: the frame is sandboxed without allow-scripts or allow-same-origin',
        (await frameEl.getAttribute('sandbox')) === '');
  check('hostile HTML: its text is shown in the frame',
        (await frame.textContent('body')).includes('Look at this'));
  check('hostile HTML: no script ran (no element it would add, titles unchanged)',
        (await frame.$('#ran')) === null && (await page.title()) !== 'pwned' &&
        (await frame.title()) !== 'pwned');
  check('hostile HTML: nothing reached the other port (image, style, refresh, fetch)',
        hits.length === 0, hits.join(' '));
  const foreign = requests.filter((u) => !u.startsWith(web.base) && !u.startsWith('data:'));
  check('hostile HTML: nothing from anyone but this server reached the browser',
        foreign.length === 0, foreign.join(' '));
}

async function main() {
  mkdirSync(bobNew, { recursive: true });
  const atts = [{ name: 'data.bin', bytes: BIG }, { name: 'Übersicht.txt', bytes: SMALL }];
  const id1 = send(1, message({ subject: SUBJECT, body: BODY, attachments: atts }));
  const id2 = send(2, message({ subject: SUBJECT, body: BODY, attachments: atts }));
  const { server, hits } = await counter();
  const other = `http://127.0.0.1:${server.address().port}`;
  const html = `<p>Look at this<img src="${other}/img.png">` +
    `<script>document.title='pwned';document.body.innerHTML+='<b id=ran>x</b>';` +
    `fetch('${other}/fetch');try{top.document.title='pwned'}catch(e){}</script></p>` +
    `<link rel=stylesheet href="${other}/x.css"><div style="background:url(${other}/bg.png)">` +
    `bg</div><meta http-equiv="refresh" content="0;url=${other}/refresh">` +
    `<iframe src="${other}/frame"></iframe><object data="${other}/object"></object>`;
  const id3 = send(2, message({ subject: 'Hostile HTML', body: 'plain part', html }));
  const id4 = send(2, message({ subject: 'Tamper me', body: 'tamper-secret text' }));
  tamper(id4);
  const id5 = send(2, message({ subject: 'Used elsewhere', body: 'elsewhere-secret' }));
  const id6 = send(1, message({ subject: 'Decrypted by the CLI', body: 'cli-secret' }));
  const id7 = send(2, message({ subject: 'While the KME is down', body: 'down-secret' }));
  // alice's message to herself (Level 4: a KME gives no key for oneself), dropped into
  // bob's Maildir: bob is not among its recipients
  const aliceNew = path.join(env.QUMAIL_MAILDIR_ROOT, 'alice@example.org', 'new');
  mkdirSync(aliceNew, { recursive: true });
  const mineBefore = new Set(readdirSync(aliceNew));
  qm(env.QUMAIL_CONFIG_A1, ['send', '--level', '4', '--to', 'alice@example.org'],
     message({ subject: 'For alice only', body: 'alice-secret' }));
  const mine = readdirSync(aliceNew).filter((f) => !mineBefore.has(f))[0];
  const id8 = `1000000001.${mine}`;
  writeFileSync(path.join(bobNew, id8), readFileSync(path.join(aliceNew, mine)));

  // id5's keys taken from the KME by bob's account in another configuration
  const other5 = path.join(work, 'bob-elsewhere.conf');
  writeFileSync(other5, readFileSync(env.QUMAIL_CONFIG_B1, 'utf8')
    .replace(/^dir = .*$/m, `dir = ${path.join(work, 'bob-elsewhere-store')}`));
  qm(other5, ['read', id5]);
  // id6 decrypted here by `qumail decrypt` (used keys recorded, no read store)
  qm(env.QUMAIL_CONFIG_B1, ['decrypt'], readFileSync(path.join(bobNew, id6)));

  const web = await startWeb(qumail, env.QUMAIL_CONFIG_B1, work, 'bob-read');
  const ctx = await browser();
  const page = await ctx.newPage();
  await page.goto(web.url);
  const rows = await rowsText(page);
  check('eight rows, all unread, the seven at Levels 1 and 2 "Encrypted"',
        rows.length === 8 && rows.every((r) => /Unread/.test(r)) &&
        rows.filter((r) => /Encrypted/.test(r)).length === 7,
        JSON.stringify(rows));
  check('each row\'s first link opens its message',
        (await page.$$eval('table.inbox tbody tr', (trs) => trs.map((tr) =>
          tr.querySelector('a').getAttribute('href')))).every((h) => h.startsWith('/message/')));

  await openMessage(page, web, id1, 1);
  await page.screenshot({ path: path.join(artifacts, 'message.png'), fullPage: true });
  await openMessage(page, web, id2, 2);
  await hostileHtml(page, web, ctx, id3, hits);

  await page.goto(`${web.base}/message/${id4}`);
  let text = await page.textContent('main');
  check('tampered: the warning says so', (await page.textContent('h1')) === 'Tampered' &&
        (await page.$('.banner.danger[role=alert]')) !== null, text.slice(0, 200));
  check('tampered: no plaintext', !text.includes('tamper-secret') && !text.includes('Tamper me'));

  await page.goto(`${web.base}/message/${id5}`);
  text = await page.textContent('main');
  check('keys taken by another configuration: "Key already used"',
        (await page.textContent('h1')) === 'Key already used', text.slice(0, 300));
  check('... and no plaintext', !text.includes('elsewhere-secret'));
  await page.goto(`${web.base}/message/${id6}`);
  text = await page.textContent('main');
  check('decrypted before by qumail decrypt: "Key already used" and when',
        (await page.textContent('h1')) === 'Key already used' &&
        /read on \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC/.test(text), text.slice(0, 300));

  await page.goto(`${web.base}/message/${id8}`);
  text = await page.textContent('main');
  check('a message for another SAE: "Not for this account", no plaintext',
        (await page.textContent('h1')) === 'Not for this account' && !text.includes('alice-secret'),
        text.slice(0, 300));

  await page.goto(`${web.base}/`);
  const after = await rowsText(page);
  const row1 = after.find((r) => r.includes(SUBJECT));
  check('the Inbox now shows the real subject and the attachment mark',
        row1 && /2 attachments/.test(row1) && /Read/.test(row1), JSON.stringify(after));
  await page.screenshot({ path: path.join(artifacts, 'read-inbox.png') });

  execFileSync(env.TESTBED_SCRIPT, ['stop', env.TESTBED_DIR, 'kme-b'], { stdio: 'ignore' });
  const down = await page.goto(`${web.base}/message/${id7}`);
  text = await page.textContent('main');
  check('an unread message with KME-B stopped: 503 "KME unreachable", a Retry link, no plaintext',
        down.status() === 503 && (await page.textContent('h1')) === 'KME unreachable' &&
        (await page.getByRole('link', { name: 'Retry', exact: true }).getAttribute('href')) ===
          `/message/${id7}` && !text.includes('down-secret'), text.slice(0, 300));
  for (const [id, level] of [[id1, 1], [id2, 2]]) {
    const r = await page.goto(`${web.base}/message/${id}`);
    text = await page.textContent('main');
    check(`Level ${level} again with KME-B stopped: from the read store, no KME call`,
          r.status() === 200 && text.includes('from the read store (no key used, no KME call)') &&
          text.includes('the figures are attached.'), r.status());
    const big = await download(page, 'data.bin');
    check(`Level ${level} again: the attachment still byte for byte`, big.bytes.equals(BIG));
  }
  server.close();
}

try {
  await main();
} catch (e) {
  check('the test ran to its end', false, e.stack || e);
} finally {
  await cleanup();
}
process.exit(summary() ? 0 : 1);
