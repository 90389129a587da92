// SPDX-License-Identifier: Apache-2.0
// test-compose.mjs - Compose, Reply and sending in Chromium, on a testbed
// whose link pool is capped at 4 Mbit (tests/web/meson.build):
//   - the keyboard: c opens Compose, g i returns to the Inbox;
//   - the form's accessible names (labels To, Cc, Subject, Message,
//     Attachments, Security level; Level 3 disabled; Send), the address
//     book in a datalist, the key panel; a screenshot (compose.png);
//   - alice sends bob a non-ASCII subject, a body and two attachments (one
//     a 300 kB binary) at Level 1, then at Level 2: the result page names
//     bob, the level and key IDs; the raw Maildir file holds neither
//     subject nor body; the Level 1 message bob opens in his browser (listed
//     as encrypted, subject and body shown, the attachment downloaded byte
//     for byte, reopened from the read store with no KME call), the Level 2
//     one with `qumail read`;
//   - bob, with the keyboard (j, Enter, r), replies from the web (Reply: To
//     alice, "Re: ", quoted text), then forwards alice's message (f): her
//     attachments carried along byte for byte;
//   - a 600 kB attachment at Level 1 is past the pool: refused with the
//     reason, Level 1 disabled, nothing delivered; Level 2 then sends;
//   - Level 4 without its confirmation is refused, nothing delivered.
//
// Usage: node test-compose.mjs QUMAIL WORKDIR ARTIFACTS (testbed.env in the
// environment: tests/web/browser-test)
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { browser, check, cleanup, startWeb, summary } from './browser.mjs';

const [qumail, work, artifacts] = process.argv.slice(2);
const env = process.env;
mkdirSync(artifacts, { recursive: true });
const maildir = (who) => path.join(env.QUMAIL_MAILDIR_ROOT, who, 'new');
const SUBJECT = 'Grüße aus Wien: Ångström & 日本';
const BODY = 'Dear Bob,\nthe numbers are attached.\nSecretBodyWord 42\n';
const BIN = randomBytes(300 * 1000);
const NOTES = Buffer.from('notes: ünïcödé text file\n');

function files(who) {
  try { return readdirSync(maildir(who)).sort(); } catch { return []; }
}

// The newest file of who's Maildir that was not in before.
function newFile(who, before) {
  const added = files(who).filter((f) => !before.includes(f));
  return added.length === 1 ? added[0] : null;
}

function qm(config, args) {
  return execFileSync(qumail, ['--config', config, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
}

// The RFC 2047 words of a Subject header, decoded (B encoding, UTF-8).
function decodedSubject(msg) {
  const m = /^Subject: ((?:.*)(?:\n[ \t].*)*)/m.exec(msg);
  if (!m) return null;
  return m[1].replace(/\n[ \t]/g, ' ').replace(/\?= =\?/g, '?==?')
    .replace(/=\?UTF-8\?B\?([^?]*)\?=/gi, (_, b) => Buffer.from(b, 'base64').toString('utf8'));
}

// The base64 body of the part whose filename* is name, decoded.
function attachment(msg, name) {
  const at = msg.indexOf(`filename*=UTF-8''${name}`);
  if (at < 0) return null;
  const start = msg.indexOf('\n\n', at) + 2;
  const end = msg.indexOf('\n--', start);
  return Buffer.from(msg.slice(start, end).replace(/\s+/g, ''), 'base64');
}

// alice's and bob's pages share one browser: the page acted on is brought to
// the front first, since Chromium throttles the animation frames of a
// background tab, on which every Playwright click waits (1-2 s each).
async function compose(page, base, { to, subject, body, files: att, level, confirm }) {
  await page.bringToFront();
  await page.goto(`${base}/compose`);
  await page.getByLabel('To', { exact: true }).fill(to);
  await page.getByLabel('Subject', { exact: true }).fill(subject);
  await page.getByLabel('Message', { exact: true }).fill(body);
  if (att) await page.getByLabel('Attachments', { exact: true }).setInputFiles(att);
  await page.getByLabel('Security level', { exact: true }).selectOption(String(level));
  if (confirm) await page.getByLabel(/^Level 4 only/).check();
  const [resp] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/compose/send')),
    page.getByRole('button', { name: 'Send', exact: true }).click(),
  ]);
  await page.waitForLoadState();
  return resp;
}

const attachments = () => [
  { name: 'numbers.bin', mimeType: 'application/octet-stream', buffer: BIN },
  { name: 'notes.txt', mimeType: 'text/plain', buffer: NOTES },
];

async function keyboard(page, base) {
  await page.goto(`${base}/`);
  await page.keyboard.press('c');
  await page.waitForURL(`${base}/compose`);
  check('keyboard: c opens Compose', page.url() === `${base}/compose`, page.url());
  await page.getByLabel('Subject', { exact: true }).focus();
  await page.keyboard.press('g');
  await page.keyboard.press('i');
  check('keyboard: g i while typing in a field types, it does not leave',
        page.url() === `${base}/compose` &&
        (await page.getByLabel('Subject', { exact: true }).inputValue()) === 'gi');
  await page.locator('h1').click();
  await page.keyboard.press('g');
  await page.keyboard.press('i');
  await page.waitForURL(`${base}/`);
  check('keyboard: g i returns to the Inbox', page.url() === `${base}/`, page.url());
  const shortcuts = await page.$$eval('[aria-keyshortcuts]', (els) =>
    els.map((e) => `${e.textContent}=${e.getAttribute('aria-keyshortcuts')}`));
  check('nav links carry their shortcuts', shortcuts.includes('Inbox=g i') &&
        shortcuts.includes('Compose=c'), JSON.stringify(shortcuts));
  const names = await page.$$eval('nav[aria-label=Main] a', (as) => as.map((a) => a.textContent));
  check('nav links named exactly Inbox, Compose, Keys',
        ['Inbox', 'Compose', 'Keys'].every((n) => names.includes(n)), JSON.stringify(names));
}

async function formNames(page, base) {
  await page.goto(`${base}/compose`);
  for (const l of ['To', 'Cc', 'Subject', 'Message', 'Attachments', 'Security level'])
    check(`a field labelled exactly "${l}"`, (await page.getByLabel(l, { exact: true }).count()) === 1);
  check('Attachments takes several files',
        await page.getByLabel('Attachments', { exact: true }).evaluate((e) => e.type === 'file' && e.multiple));
  const opts = await page.$$eval('#level option', (os) => os.map((o) => [o.textContent, o.disabled]));
  check('levels 1, 2, 3, 4 in order; 3 disabled as not available; 1, 2, 4 enabled',
        opts.length === 4 && opts.every((o, i) => o[0].startsWith(`Level ${[1, 2, 3, 4][i]}`)) &&
        opts[2][1] && /not available/.test(opts[2][0]) && !opts[0][1] && !opts[1][1] && !opts[3][1],
        JSON.stringify(opts));
  const book = await page.$$eval('datalist#contacts option', (os) => os.map((o) => o.value));
  check('To completes from the address book', book.includes('bob@example.org') &&
        (await page.getByLabel('To', { exact: true }).getAttribute('list')) === 'contacts',
        JSON.stringify(book));
  const panel = await page.textContent('section.panel');
  check('the key panel states the Level 1 cost in bits and what the KME holds for bob',
        /Level 1 \(one-time pad\) costs \d+ bits/.test(panel) &&
        /bob@example\.org\s*\d+ bits\s*\d+ bits \(\d+ keys of \d+ bits\)/.test(panel), panel);
  check('a button named exactly "Send"',
        (await page.getByRole('button', { name: 'Send', exact: true }).count()) === 1);
  await page.screenshot({ path: path.join(artifacts, 'compose.png'), fullPage: true });
}

async function download(page, name) {
  const [dl] = await Promise.all([page.waitForEvent('download'),
                                  page.getByRole('link', { name, exact: true }).click()]);
  return readFileSync(await dl.path());
}

// bob, in his browser, opens what alice sent from hers.
async function bobOpens(bobPage, bobBase, id, level) {
  await bobPage.bringToFront();
  await bobPage.goto(`${bobBase}/`);
  const row = bobPage.locator('table.inbox tr', { has: bobPage.locator(`a[href="/message/${id}"]`) });
  check(`Level ${level}: bob's Inbox lists it, encrypted`,
        (await row.count()) === 1 && /Encrypted/.test(await row.textContent()),
        (await row.count()) ? await row.textContent() : 'no row');
  await bobPage.click(`table.inbox a[href="/message/${id}"]`);
  await bobPage.waitForURL(`${bobBase}/message/${id}`);
  const text = await bobPage.textContent('main');
  check(`Level ${level}: bob's browser shows the subject and the body, decrypted now`,
        (await bobPage.textContent('h1')) === `${SUBJECT} L${level}` && text.includes('SecretBodyWord 42') &&
        text.includes('decrypted now with keys from the KME'), text.slice(0, 300));
  const got = await download(bobPage, 'numbers.bin');
  check(`Level ${level}: bob downloads the 300 kB attachment byte for byte`, got.equals(BIN), got.length);
  await bobPage.reload();
  check(`Level ${level}: opened again: from the read store, no KME call`,
        (await bobPage.textContent('main')).includes('from the read store (no key used, no KME call)') &&
        (await bobPage.textContent('h1')) === `${SUBJECT} L${level}`);
}

// alice -> bob at level; bob reads it in his browser (bobOpen) or with
// `qumail read`; returns the Maildir file name.
async function sendToBob(page, base, level, bobOpen) {
  const before = files('bob@example.org');
  const resp = await compose(page, base, { to: 'bob@example.org', subject: `${SUBJECT} L${level}`,
                                           body: BODY, files: attachments(), level });
  check(`Level ${level}: Send answers 303 to the result page`,
        resp.status() === 303 && /\/sent\/[0-9a-f]{32}$/.test(page.url()), `${resp.status()} ${page.url()}`);
  const summary = await page.textContent('#sent-summary');
  const keys = await page.$$eval('#key-ids code', (cs) => cs.map((c) => c.textContent));
  check(`Level ${level}: the result names bob, Level ${level} and the key IDs`,
        summary.includes(`Level ${level}`) && (await page.textContent('#recipients')).includes('bob@example.org') &&
        keys.length >= (level === 1 ? 2 : 1) && keys.every((k) => /^[0-9a-f-]{36}$/.test(k)),
        `${summary} ${JSON.stringify(keys)}`);
  const file = newFile('bob@example.org', before);
  check(`Level ${level}: one new file in bob's Maildir`, file !== null, JSON.stringify(files('bob@example.org')));
  const raw = readFileSync(path.join(maildir('bob@example.org'), file)).toString('latin1');
  check(`Level ${level}: the raw Maildir file holds neither subject nor body in clear`,
        raw.includes('multipart/encrypted') && !raw.includes('SecretBodyWord') &&
        !raw.includes('Wien') && !raw.includes(Buffer.from('Grüße').toString('base64').slice(0, 6)) &&
        !raw.includes('numbers.bin'), raw.slice(0, 300));
  const id = file.split(':')[0];
  if (bobOpen) {
    await bobOpen(id);
    return id;
  }
  const inner = qm(env.QUMAIL_CONFIG_B1, ['read', id]).toString('utf8');
  check(`Level ${level}: bob's qumail read shows the subject`,
        decodedSubject(inner) === `${SUBJECT} L${level}`, decodedSubject(inner));
  check(`Level ${level}: ... and the body`, inner.includes('SecretBodyWord 42'));
  const got = attachment(inner, 'numbers.bin');
  check(`Level ${level}: ... and the 300 kB attachment byte for byte`, got && got.equals(BIN),
        got ? got.length : 'none');
  const notes = attachment(inner, 'notes.txt');
  check(`Level ${level}: ... and the second attachment`, notes && notes.equals(NOTES));
  return id;
}

async function reply(bobPage, bobBase, id) {
  // The keyboard on bob's Inbox: j selects the newest row, Enter opens it, r replies.
  await bobPage.bringToFront();
  await bobPage.goto(`${bobBase}/`);
  await bobPage.keyboard.press('j');
  await bobPage.keyboard.press('Enter');
  await bobPage.waitForURL(/\/message\//);
  check('keyboard: j then Enter opens the newest message', bobPage.url().includes(encodeURIComponent(id)),
        bobPage.url());
  await bobPage.keyboard.press('r');
  await bobPage.waitForURL(/\/compose\?reply=/);
  check('keyboard: r on a message opens Reply', bobPage.url() ===
        `${bobBase}/compose?reply=${encodeURIComponent(id)}`, bobPage.url());
  const to = await bobPage.getByLabel('To', { exact: true }).inputValue();
  const subject = await bobPage.getByLabel('Subject', { exact: true }).inputValue();
  const text = await bobPage.getByLabel('Message', { exact: true }).inputValue();
  check('Reply: To is the original sender, "Re: " subject, the text quoted',
        to === 'alice@example.org' && subject === `Re: ${SUBJECT} L2` && text.includes('> SecretBodyWord 42'),
        JSON.stringify([to, subject, text.slice(0, 120)]));
  await bobPage.getByLabel('Message', { exact: true }).fill(`Thanks!\n${text}`);
  await bobPage.getByLabel('Security level', { exact: true }).selectOption('2');
  const before = files('alice@example.org');
  const [resp] = await Promise.all([
    bobPage.waitForResponse((r) => r.url().endsWith('/compose/send')),
    bobPage.getByRole('button', { name: 'Send', exact: true }).click(),
  ]);
  check('Reply: sent (303)', resp.status() === 303, resp.status());
  const file = newFile('alice@example.org', before);
  const inner = file ? qm(env.QUMAIL_CONFIG_A1, ['read', file.split(':')[0]]).toString('utf8') : '';
  check('Reply: alice reads it: her subject with "Re: ", bob\'s words, In-Reply-To',
        decodedSubject(inner) === `Re: ${SUBJECT} L2` && inner.includes('Thanks!') &&
        /^In-Reply-To: <[^>]+>$/m.test(inner), inner.slice(0, 400));
  await bobPage.goto(`${bobBase}/compose?reply_all=${encodeURIComponent(id)}`);
  const allTo = await bobPage.getByLabel('To', { exact: true }).inputValue();
  const allCc = await bobPage.getByLabel('Cc', { exact: true }).inputValue();
  check('Reply all: To the sender; Cc the other recipients without yourself (bob was the only one)',
        allTo === 'alice@example.org' && allCc === '' && (await bobPage.textContent('h1')) === 'Reply all',
        JSON.stringify([allTo, allCc]));
  const bad = await bobPage.goto(`${bobBase}/compose?reply=no-such-id`);
  check('Reply to an unknown ID: an error page (404)', bad.status() === 404, bad.status());
}

// bob forwards alice's Level 2 message (two attachments) back to her.
async function forward(bobPage, bobBase, id) {
  await bobPage.bringToFront();
  await bobPage.goto(`${bobBase}/message/${encodeURIComponent(id)}`);
  await bobPage.keyboard.press('f');
  await bobPage.waitForURL(/\/compose\?forward=/);
  const subject = await bobPage.getByLabel('Subject', { exact: true }).inputValue();
  const text = await bobPage.getByLabel('Message', { exact: true }).inputValue();
  const carried = await bobPage.textContent('ul.forwarded').catch(() => '');
  check('Forward: "Fwd: " subject, the original text, its attachments listed',
        subject === `Fwd: ${SUBJECT} L2` && text.includes('SecretBodyWord 42') &&
        carried.includes('numbers.bin') && carried.includes('notes.txt'), JSON.stringify([subject, carried]));
  await bobPage.getByLabel('To', { exact: true }).fill('alice@example.org');
  await bobPage.getByLabel('Security level', { exact: true }).selectOption('2');
  const before = files('alice@example.org');
  const [resp] = await Promise.all([
    bobPage.waitForResponse((r) => r.url().endsWith('/compose/send')),
    bobPage.getByRole('button', { name: 'Send', exact: true }).click(),
  ]);
  const file = newFile('alice@example.org', before);
  const inner = file ? qm(env.QUMAIL_CONFIG_A1, ['read', file.split(':')[0]]).toString('utf8') : '';
  const got = attachment(inner, 'numbers.bin');
  check('Forward: sent, and alice gets the original attachments byte for byte',
        resp.status() === 303 && got && got.equals(BIN) && attachment(inner, 'notes.txt')?.equals(NOTES),
        `${resp.status()} ${got ? got.length : 'none'}`);
}

async function refusals(page, base) {
  const before = files('bob@example.org');
  const big = randomBytes(600 * 1000);
  let resp = await compose(page, base, { to: 'bob@example.org', subject: 'Too big for the pool',
    body: 'x', files: [{ name: 'big.bin', mimeType: 'application/octet-stream', buffer: big }], level: 1 });
  const error = await page.textContent('#send-error').catch(() => '');
  check('Level 1 past the pool (4 Mbit): refused (409) with the reason',
        resp.status() === 409 && /Level 1 cannot cover this message: it needs \d+ bits/.test(error), `${resp.status()} ${error}`);
  const opts = await page.$$eval('#level option', (os) => os.map((o) => [o.value, o.disabled, o.selected]));
  check('... and Level 1 is disabled on the form shown again, Level 2 chosen',
        opts[0][1] === true && opts[1][2] === true && /disabled/.test(await page.textContent('#level1-reason')),
        JSON.stringify(opts));
  check('... nothing delivered', files('bob@example.org').length === before.length);
  check('... what was typed is kept', (await page.getByLabel('Subject', { exact: true }).inputValue()) === 'Too big for the pool');
  await page.getByLabel('Attachments', { exact: true }).setInputFiles([{ name: 'big.bin', mimeType: 'application/octet-stream', buffer: big }]);
  const [r2] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/compose/send')),
    page.getByRole('button', { name: 'Send', exact: true }).click(),
  ]);
  await page.waitForLoadState();
  check('... Level 2 still sends it', r2.status() === 303 && (await page.textContent('#sent-summary')).includes('Level 2'));
  check('... one new file for bob', files('bob@example.org').length === before.length + 1);
  const unread = newFile('bob@example.org', before);

  const before4 = files('bob@example.org');
  resp = await compose(page, base, { to: 'bob@example.org', subject: 'plain', body: 'open', level: 4 });
  check('Level 4 without its confirmation: refused (422), nothing delivered',
        resp.status() === 422 && /Level 4/.test(await page.textContent('#send-error')) &&
        files('bob@example.org').length === before4.length, resp.status());
  resp = await compose(page, base, { to: 'carol@example.org', subject: 's', body: 'b', level: 2 });
  check('a recipient not in the address book: refused (422)', resp.status() === 422 &&
        /not in the address book/.test(await page.textContent('#send-error')), resp.status());
  return unread.split(':')[0];
}

const t0 = Date.now();
const stage = (name) => console.log(`# ${name}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);

async function main() {
  const alice = await startWeb(qumail, env.QUMAIL_CONFIG_A1, work, 'alice');
  const bob = await startWeb(qumail, env.QUMAIL_CONFIG_B1, work, 'bob');
  const ctx = await browser();
  const page = await ctx.newPage();
  await page.goto(alice.url);
  await keyboard(page, alice.base);
  stage('keyboard');
  await formNames(page, alice.base);
  stage('formNames');
  const bobPage = await ctx.newPage();   // one browser: the cookies are named after each port
  await bobPage.goto(bob.url);
  await sendToBob(page, alice.base, 1, (id) => bobOpens(bobPage, bob.base, id, 1));
  stage('sendToBob');
  const id2 = await sendToBob(page, alice.base, 2);
  stage('sendToBob');
  await reply(bobPage, bob.base, id2);
  stage('reply');
  await forward(bobPage, bob.base, id2);
  stage('forward');
  const unread = await refusals(page, alice.base);
  const early = await bobPage.goto(`${bob.base}/compose?reply=${encodeURIComponent(unread)}`);
  check('Reply to a message not read yet: 409, "open it first"',
        early.status() === 409 && /open it first/.test(await bobPage.textContent('main')), early.status());
  check('... its keys were not spent: bob still reads it',
        qm(env.QUMAIL_CONFIG_B1, ['read', unread]).toString('utf8').includes('Too big for the pool'));
  stage('refusals');
}

try {
  await main();
} catch (e) {
  check('the test ran to its end', false, e.stack || e);
} finally {
  await cleanup();
}
process.exit(summary() ? 0 : 1);
