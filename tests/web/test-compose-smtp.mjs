// SPDX-License-Identifier: Apache-2.0
// test-compose-smtp.mjs - Compose sending through the test suite's real
// Postfix (SMTP submission, STARTTLS) to bob's Dovecot mailbox: alice's
// web client sends a Level 1 message with an attachment; the copy on the
// IMAP server is the encrypted outer message only (no subject, body or
// file name in clear); bob's `qumail read` over IMAP shows the subject,
// the body and the attachment byte for byte.
//
// Runs after test-inbox-imap.mjs on the same servers (tests/web/meson.build):
// it finds its message by the UID that is new.
//
// Usage: node test-compose-smtp.mjs QUMAIL WORKDIR ARTIFACTS (testbed.env
// and mailservers.env in the environment: tests/web/browser-test under
// tests/mail/run-with-mailservers)
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { browser, check, cleanup, startWeb, summary } from './browser.mjs';

const [qumail, work] = process.argv.slice(2);
const env = process.env;
const SUBJECT = 'Über SMTP: Grüße';
const BIN = randomBytes(50 * 1000);

// The testbed's configs with mail through the servers (as test-inbox-imap.mjs).
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

function curl(args) {
  try {
    return execFileSync('curl', ['-s', '--cacert', env.MAIL_CA, '-u',
      `${env.MAIL_BOB}:${readFileSync(env.MAIL_BOB_PASSWORD_FILE, 'utf8').trim()}`, ...args])
      .toString('latin1');
  } catch { return ''; }
}

// bob's IMAP UIDs (the test may run after another on the same servers).
function uids() {
  const m = /\* SEARCH([ 0-9]*)/.exec(curl(['-X', 'UID SEARCH ALL', `${env.IMAPS_URL}/INBOX`]));
  return m ? m[1].trim().split(/ +/).filter(Boolean).map(Number) : [];
}

async function main() {
  const conf = configs();
  const before = uids();
  const web = await startWeb(qumail, conf.alice, work, 'alice-smtp');
  const ctx = await browser();
  const page = await ctx.newPage();
  await page.goto(web.url);
  await page.goto(`${web.base}/compose`);
  await page.getByLabel('To', { exact: true }).fill('bob@example.org');
  await page.getByLabel('Subject', { exact: true }).fill(SUBJECT);
  await page.getByLabel('Message', { exact: true }).fill('SecretSmtpBody\n');
  await page.getByLabel('Attachments', { exact: true }).setInputFiles([
    { name: 'data.bin', mimeType: 'application/octet-stream', buffer: BIN }]);
  await page.getByLabel('Security level', { exact: true }).selectOption('1');
  const [resp] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/compose/send')),
    page.getByRole('button', { name: 'Send', exact: true }).click(),
  ]);
  await page.waitForLoadState();
  check('sent by SMTP submission: 303 to the result page, Level 1',
        resp.status() === 303 && (await page.textContent('#sent-summary')).includes('Level 1'), resp.status());
  // Delivery through Postfix to Dovecot may take a moment.
  let uid = null;
  for (let i = 0; uid === null && i < 50; i++) {
    uid = uids().find((u) => !before.includes(u)) ?? null;
    if (uid === null) await new Promise((r) => setTimeout(r, 200));
  }
  const raw = uid === null ? '' : curl([`${env.IMAPS_URL}/INBOX;UID=${uid}`]);
  check('the copy on the IMAP server is the encrypted outer message only',
        raw.includes('multipart/encrypted') && !raw.includes('SecretSmtpBody') &&
        !raw.includes('SMTP: Gr') && !raw.includes('data.bin'), raw.slice(0, 200));
  const inner = execFileSync(qumail, ['--config', conf.bob, 'read', String(uid)],
                             { stdio: ['ignore', 'pipe', 'pipe'] }).toString('utf8');
  const words = /^Subject: ((?:.*)(?:\r?\n[ \t].*)*)/m.exec(inner);
  const subject = words ? words[1].replace(/\r?\n[ \t]/g, ' ').replace(/\?= =\?/g, '?==?')
    .replace(/=\?UTF-8\?B\?([^?]*)\?=/gi, (_, b) => Buffer.from(b, 'base64').toString('utf8')) : null;
  check('bob reads it over IMAP: subject and body', subject === SUBJECT && inner.includes('SecretSmtpBody'),
        subject);
  const at = inner.indexOf("filename*=UTF-8''data.bin");
  const start = inner.indexOf('\n\n', at) + 2;
  const got = at < 0 ? null : Buffer.from(inner.slice(start, inner.indexOf('\n--', start)).replace(/\s+/g, ''), 'base64');
  check('... and the attachment byte for byte', got !== null && got.equals(BIN), got ? got.length : 'none');
}

try {
  await main();
} catch (e) {
  check('the test ran to its end', false, e.stack || e);
} finally {
  await cleanup();
}
process.exit(summary() ? 0 : 1);
