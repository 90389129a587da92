// SPDX-License-Identifier: Apache-2.0
// browser.mjs - what the browser tests of `qumail web` share: Debian's
// /usr/bin/chromium driven by playwright-core (no browser download), each
// browser with a fresh profile directory; a `qumail web` server started
// for a config; a tiny TAP-like reporter.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';

const require = createRequire(path.join(process.env.WEB_NODE_DIR, 'node_modules', '/'));
const { chromium } = require('playwright-core');

export const CHROMIUM = process.env.WEB_CHROMIUM || '/usr/bin/chromium';
// Deadlines get three times the slack under sanitizers.
export const SLOW = process.env.QUMAIL_SANITIZED === '1' ? 3 : 1;

let checks = 0, failures = 0;
export function check(name, ok, detail) {
  checks++;
  if (ok) {
    console.log(`ok ${checks} - ${name}`);
  } else {
    failures++;
    console.log(`not ok ${checks} - ${name}`);
    if (detail !== undefined) console.log(`#   ${String(detail).split('\n').join('\n#   ')}`);
  }
}
export function summary() {
  console.log(`${checks} checks, ${failures} failed`);
  return failures === 0 && checks > 0;
}

const cleanups = [];
export async function cleanup() {
  while (cleanups.length) {
    try { await cleanups.pop()(); } catch { /* already gone */ }
  }
}

// A browser with a fresh profile; closed (and its profile removed) by cleanup().
export async function browser() {
  const profile = mkdtempSync(path.join(tmpdir(), 'qumail-web-profile-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30000 * SLOW,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  context.setDefaultTimeout(10000 * SLOW);
  cleanups.push(async () => { await context.close(); rmSync(profile, { recursive: true, force: true }); });
  return context;
}

// `qumail --config CONFIG web` on a free port; resolves to { url, port, base, proc }.
export async function startWeb(qumail, config, dir, name, extra = []) {
  const urlFile = path.join(dir, `${name}.url`);
  rmSync(urlFile, { force: true });
  const proc = spawn(qumail, ['--config', config, 'web', '--listen', '127.0.0.1:0',
                              '--url-file', urlFile, '--no-open', ...extra],
                     { stdio: ['ignore', 'ignore', 'inherit'] });
  cleanups.push(() => new Promise((resolve) => {
    if (proc.exitCode !== null) return resolve();
    proc.once('exit', resolve);
    proc.kill('SIGTERM');
  }));
  const deadline = Date.now() + 5000 * SLOW;
  while (!existsSync(urlFile)) {
    if (proc.exitCode !== null || Date.now() > deadline)
      throw new Error(`qumail web for ${name} did not start`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const url = readFileSync(urlFile, 'utf8').trim();
  const port = Number(new URL(url).port);
  return { url, port, base: `http://127.0.0.1:${port}`, proc };
}
