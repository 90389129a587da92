// SPDX-License-Identifier: Apache-2.0
// status-page.mjs - KME-A's status page in a real Chromium on the testbed:
// it answers with the security headers and loads nothing from elsewhere
// (no console errors, no CSP violation), shows both directions of the
// link with their pool levels and charts and KME-B up; then KME-B is
// stopped and, with no reload by the test (the page refreshes itself),
// KME-B's row and the page's verdict turn red within a few seconds; and
// back to green once KME-B runs again.  The red page is the screenshot
// of docs/operations.md (ARTIFACTS/ops-status.png).
//
// Usage: node status-page.mjs ARTIFACTS (testbed.env in the environment:
// tests/ops/browser-test)
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { browser, check, cleanup, summary, SLOW } from '../web/browser.mjs';

const [artifacts] = process.argv.slice(2);
const env = process.env;
const url = `${env.KME_A_ADMIN_URL}/`;
const RED = 'rgb(204, 0, 0)';
const testbed = (what) => execFileSync(env.TESTBED_SCRIPT, [what, env.TESTBED_DIR, 'kme-b'],
                                       { stdio: 'ignore' });

// Poll the page as it reloads itself: fn(page) true before the deadline.
async function within(page, ms, fn) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    try { if (await fn(page)) return Date.now(); } catch { /* reloading */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  return 0;
}

async function peerState(page) {
  return page.locator(`tr.peer[data-peer="${env.KME_B_ID}"]`).getAttribute('data-state',
                                                                         { timeout: 500 });
}

async function main() {
  const ctx = await browser();
  const page = await ctx.newPage();
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
  page.on('requestfailed', (r) => problems.push(`failed: ${r.url()}`));

  const resp = await page.goto(url);
  const h = resp.headers();
  check('the page answers 200', resp.status() === 200, resp.status());
  check("CSP default-src 'none'", (h['content-security-policy'] || '').startsWith("default-src 'none'"),
        h['content-security-policy']);
  check('nosniff, no-referrer, DENY', h['x-content-type-options'] === 'nosniff'
        && h['referrer-policy'] === 'no-referrer' && h['x-frame-options'] === 'DENY');
  check('it refreshes itself (meta refresh)',
        await page.locator('meta[http-equiv="refresh"]').count() === 1);
  for (const [from, to] of [[env.KME_A_ID, env.KME_B_ID], [env.KME_B_ID, env.KME_A_ID]]) {
    const dir = page.locator(`.dir[data-direction="${from}->${to}"]`);
    check(`direction ${from} -> ${to} shown`, await dir.count() === 1);
    const level = await dir.locator('.level').textContent().catch(() => '');
    check(`  its pool level is a number of bytes (${level})`, /^\d+$/.test(level || ''));
    check('  with its chart', await dir.locator('svg polyline').count() === 2);
  }
  check('KME-B is up', await peerState(page) === 'up');
  const okColor = await page.locator('#overall').evaluate((e) => getComputedStyle(e).color);
  check('the verdict is not red while all is well', okColor !== RED, okColor);
  await page.screenshot({ path: path.join(artifacts, 'ops-status-up.png'), fullPage: true });

  testbed('stop');
  const stopped = Date.now();
  const limit = (3 + 2 + 1) * 1000 * SLOW; // probe within 3 s, a refresh every 2 s, slack
  const seen = await within(page, limit, async (p) => await peerState(p) === 'down');
  check(`KME-B down on the page within ${limit / 1000} s`, seen > 0,
        seen ? '' : await page.content().catch(() => ''));
  if (seen)
    console.log(`# seen after ${((seen - stopped) / 1000).toFixed(1)} s`);
  const cell = page.locator(`tr.peer[data-peer="${env.KME_B_ID}"] td.bad`);
  const color = await cell.evaluate((e) => getComputedStyle(e).color).catch(() => '');
  check('its state in red', color === RED, color);
  const verdict = await page.locator('#overall').evaluate((e) => [e.textContent, getComputedStyle(e).color])
    .catch(() => ['', '']);
  check('the verdict UNAVAILABLE in red', verdict[0] === 'UNAVAILABLE' && verdict[1] === RED, verdict);
  await page.screenshot({ path: path.join(artifacts, 'ops-status.png'), fullPage: true });

  testbed('start');
  const back = await within(page, limit, async (p) => await peerState(p) === 'up');
  check('KME-B up again on the page', back > 0);
  check('no console errors, nothing blocked or failed', problems.length === 0, problems.join('\n'));
}

let ok = false;
try {
  await main();
  ok = summary();
} catch (e) {
  console.log(`not ok - ${e.stack || e}`);
} finally {
  await cleanup();
}
process.exit(ok ? 0 : 1);
