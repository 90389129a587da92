// SPDX-License-Identifier: Apache-2.0
// test-session.mjs - signing in, the page's security headers as Chromium
// sees them, a CSRF attack from another page on 127.0.0.1 (same-site for
// the browser, so the SameSite=Strict cookie goes along: the Origin and
// Sec-Fetch-Site rules must stop it), and logout; in a real Chromium
// against a real `qumail web` for alice on the testbed.
//
// Usage: node test-session.mjs QUMAIL WORKDIR ARTIFACTS (QUMAIL_CONFIG_A1 in
// the environment: tests/web/browser-test)
import http from 'node:http';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { browser, check, cleanup, startWeb, summary } from './browser.mjs';

const [qumail, work, artifacts] = process.argv.slice(2);
const config = process.env.QUMAIL_CONFIG_A1;
mkdirSync(artifacts, { recursive: true });

// A hostile page on another port of 127.0.0.1: a form posting to logout
// with the session's real CSRF token (as if it had leaked), so that only
// the Origin and Sec-Fetch-Site rules stand in the way.
function hostile(target, csrf) {
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html' });
    res.end(`<!DOCTYPE html><form method="post" action="${target}/logout">
      <input type="hidden" name="csrf" value="${csrf}">
      <button type="submit">Win a prize</button></form>`);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

async function main() {
  const web = await startWeb(qumail, config, work, 'alice');
  const ctx = await browser();
  const page = await ctx.newPage();

  const first = await page.goto(web.url);
  check('signing in ends on / (the token left the address bar)',
        page.url() === `${web.base}/`, page.url());
  check('the signed-in page answers 200', first.status() === 200, first.status());
  check('the page names the account', (await page.textContent('#account')) === 'alice@example.org');
  const headers = first.headers();
  check("CSP default-src 'none' and frame-ancestors 'none'",
        /default-src 'none'/.test(headers['content-security-policy'] || '') &&
        /frame-ancestors 'none'/.test(headers['content-security-policy'] || ''),
        headers['content-security-policy']);
  check('Cache-Control no-store', headers['cache-control'] === 'no-store');
  const history = await page.evaluate(() => history.length);
  check('the history holds no token', !(await page.evaluate(() => location.href)).includes('token'),
        history);
  const cookies = await ctx.cookies(web.base);
  const cookie = cookies.find((c) => c.name === `qumail_${web.port}`);
  check('the session cookie is named after the port', !!cookie, JSON.stringify(cookies));
  check('the cookie is HttpOnly and SameSite=Strict',
        cookie && cookie.httpOnly && cookie.sameSite === 'Strict', JSON.stringify(cookie));
  check('scripts of the page cannot read the cookie',
        (await page.evaluate(() => document.cookie)) === '');
  const inbox = page.getByRole('link', { name: 'Inbox', exact: true });
  check('a link named exactly "Inbox" with its shortcut',
        (await inbox.getAttribute('aria-keyshortcuts')) === 'g i');
  const css = await page.evaluate(() => getComputedStyle(document.querySelector('nav')).display);
  check('the embedded stylesheet is applied (CSP allows it)', css === 'flex', css);
  await page.screenshot({ path: path.join(artifacts, 'home.png') });

  // The attack: another local page posts to logout with a guessed token.
  const csrf = await page.getAttribute('input[name=csrf]', 'value');
  const evil = await hostile(web.base, csrf);
  const evilPage = await ctx.newPage();
  await evilPage.goto(`http://127.0.0.1:${evil.address().port}/`);
  const [attack] = await Promise.all([
    evilPage.waitForResponse((r) => r.url() === `${web.base}/logout`),
    evilPage.getByRole('button', { name: 'Win a prize' }).click(),
  ]);
  check('a POST from another page on 127.0.0.1 is refused (403)', attack.status() === 403,
        attack.status());
  // back to alice's tab: Chromium throttles a background tab's animation
  // frames, on which Playwright's clicks wait
  await page.bringToFront();
  const again = await page.reload();
  check('the session survived the attack', again.status() === 200 &&
        (await page.textContent('#account')) === 'alice@example.org');
  evil.close();

  await page.getByRole('button', { name: 'Log out' }).click();
  await page.waitForURL(`${web.base}/logged-out`);
  check('logout ends on the logged-out page', page.url() === `${web.base}/logged-out`);
  const after = await page.goto(`${web.base}/`);
  check('after logout / answers 401', after.status() === 401, after.status());
  check('the 401 page shows no account', !(await page.content()).includes('alice@example.org'));
  const cookiesAfter = await ctx.cookies(web.base);
  check('the cookie is gone', !cookiesAfter.some((c) => c.name === `qumail_${web.port}`),
        JSON.stringify(cookiesAfter));
}

try {
  await main();
} catch (e) {
  check('the test ran to its end', false, e.stack || e);
} finally {
  await cleanup();
}
process.exit(summary() ? 0 : 1);
