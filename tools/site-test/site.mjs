// The site's browser checks, against a running `cairn serve` that
// tests/testsuite/site.rs has filled (CAIRN_URL; CAIRN_TOKEN is the bootstrap
// user's token; CAIRN_BIN the cairn binary for `login --device`;
// CAIRN_CLI_HOME its HOME; SCREENSHOTS where each page's picture goes).
// Prints one line per check group and a table of page weights and
// first-render times; exits 1 if any check failed.
import { launch, check } from './browser.mjs';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const run = promisify(execFile);
const base = process.env.CAIRN_URL;
const shots = process.env.SCREENSHOTS;
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const browser = await launch();

async function curl(args) {
  try {
    const { stdout } = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', ...args]);
    return Number(stdout);
  } catch (e) { return Number(e.stdout); }
}

// ---- pages, weights, first render, axe ------------------------------------
const pages = {
  home: '/', search: '/search?q=libbase', package: '/p/libbase', version: '/p/libbase/1.0.0',
  hostile: '/p/hostile', user: '/u/admin', organisation: '/o/acme', stats: '/stats', status: '/status',
  advisories: '/advisories', login: '/login', signup: '/signup', dashboard: '/dashboard',
  device: '/device', 'not-found': '/no/such/page',
};
const weights = [];
{
  // axe needs its script in the page: this context alone bypasses the CSP.
  const ctx = await browser.newContext({ bypassCSP: true });
  // A first navigation warms the browser (its start, fonts), which is not the page's render.
  await (await ctx.newPage()).goto(base + '/status');
  for (const [name, path] of Object.entries(pages)) {
    const page = await ctx.newPage();
    const resp = await page.goto(base + path, { waitUntil: 'load' });
    check(resp.status() === (name === 'not-found' ? 404 : 200), `${path} answers ${resp.status()}`);
    // The first paint is recorded a moment after load.
    await page.waitForFunction(() => performance.getEntriesByType('paint').length > 0, null, { timeout: 3000 })
      .catch(() => {});
    const m = await page.evaluate(() => {
      const nav = performance.getEntriesByType('navigation')[0];
      const paint = performance.getEntriesByType('paint').find((p) => p.name === 'first-contentful-paint');
      const resources = performance.getEntriesByType('resource').filter((r) => r.initiatorType !== 'fetch');
      const readme = document.querySelector('.readme');
      return {
        html: nav.decodedBodySize,
        readme: readme ? new Blob([readme.outerHTML]).size : 0,
        assets: resources.reduce((n, r) => n + r.decodedBodySize, 0),
        fcp: paint ? paint.startTime : null,
      };
    });
    const weight = m.html - m.readme + m.assets;
    weights.push({ page: path, kib: (weight / 1024).toFixed(1), fcpMs: m.fcp && Math.round(m.fcp) });
    check(weight <= 100 * 1024, `${path} weighs ${weight} bytes without its README`);
    check(m.fcp !== null && m.fcp < 1000, `${path} first render ${m.fcp} ms`);
    await page.addScriptTag({ content: axeSource });
    // A README is the publisher's HTML (sanitised, not authored here): an
    // image there without alt text is the package's, not the site's.
    const result = await page.evaluate(async () => await window.axe.run(
      { exclude: [['.readme']] }, { resultTypes: ['violations'] }));
    const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    check(bad.length === 0, `axe on ${path}: ${bad.map((v) => `${v.id} (${v.nodes.map((n) => n.target).join(' ')})`).join('; ')}`);
    await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
    await page.close();
  }
  await ctx.close();
  console.log('pages: status, weight, first render, axe: done');
}

// ---- home, search as you type, package page --------------------------------
{
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await page.goto(base + '/');
  const recent = await page.locator('#recent-h + ul.packages').innerText();
  check(recent.includes('libbase') && recent.includes('app-kit') && recent.includes('hostile'), `home lists recent: ${recent}`);
  await page.goto(base + '/search');
  await page.locator('#q').pressSequentially('app ki', { delay: 40 });
  const first = page.locator('#results li a').first();
  await first.waitFor({ timeout: 5000 });
  check((await first.innerText()) === 'app-kit', `first result for "app ki": ${await first.innerText()}`);
  check(new URL(page.url()).searchParams.get('q') === 'app ki', `search URL follows the query: ${page.url()}`);
  // From the home page: suggestions, then the keyboard.
  await page.goto(base + '/');
  await page.locator('#q').pressSequentially('libba', { delay: 40 });
  await page.locator('#suggestions li').first().waitFor({ timeout: 5000 });
  await page.keyboard.press('ArrowDown');
  await Promise.all([page.waitForURL('**/p/libbase'), page.keyboard.press('Enter')]);
  await page.goto(base + '/search?q=libbase');
  await Promise.all([page.waitForURL('**/p/libbase'), page.locator('#results li a').first().click()]);
  const readme = await page.locator('.readme').innerText();
  check(readme.includes('The base of everything') && readme.includes('tables'), `README on the package page: ${readme}`);
  check(await page.locator('.readme table').count() === 1, 'README table rendered');
  check(await page.locator('.readme del').count() === 1, 'strikethrough rendered');
  check((await page.locator('.readme a', { hasText: 'the guide' }).getAttribute('href'))
    === 'https://github.com/example/libbase/blob/HEAD/docs/guide.md', 'relative link resolved against the repository');
  const yanked = page.locator('tr.is-yanked');
  check(await yanked.count() === 1 && (await yanked.innerText()).includes('1.1.0') && (await yanked.innerText()).includes('yanked'), 'the yanked version is marked');
  const versions = await page.locator('#versions-h + table tbody tr td:first-child').allInnerTexts();
  check(versions.map((v) => v.split(' ')[0]).join() === '1.2.0,1.1.0,1.0.0', `versions newest first: ${versions}`);
  check((await page.locator('pre code').allInnerTexts()).some((c) => c.includes('cairn install libbase@1.2.0')), 'cairn install snippet');
  check((await page.locator('pre code').allInnerTexts()).some((c) => c.includes('cargo add libbase@1.2.0')), 'cargo snippet');
  check((await page.locator('svg.chart path.bars').getAttribute('d')).split('M').length - 1 === 3, '90-day chart: a bar on each of the three days with downloads');
  check((await page.locator('figure.chart figcaption').innerText()).includes('in all'), 'chart says its numbers');
  await page.goto(base + '/p/app-kit');
  const deps = await page.locator('#deps-h + table').innerText();
  check(deps.includes('libbase') && deps.includes('1.0'), `dependencies: ${deps}`);
  // An organisation owns app-kit: the owner links its page, which lists it.
  await page.getByRole('link', { name: 'org:acme' }).click();
  await page.waitForURL(/\/o\/acme$/);
  check((await page.locator('main').innerText()).includes('app-kit'), 'the organisation page lists its package');
  await page.goto(base + '/p/libbase/1.0.0');
  check((await page.locator('.advisory').innerText()).includes('CAIRN-2026-0007'), 'the advisory shows on the affected version');
  await ctx.close();
  console.log('home, search as you type, package pages: done');
}

// ---- a hostile README is inert -------------------------------------------
{
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  const dialogs = [];
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss(); });
  const violations = [];
  page.on('console', (m) => { if (m.text().includes('Content Security Policy')) violations.push(m.text()); });
  await page.goto(base + '/p/hostile', { waitUntil: 'load' });
  const html = await page.locator('.readme').innerHTML();
  for (const bad of ['<script', 'onerror', 'onload', 'javascript:', '<iframe', '<form', '<object', 'style=', 'data:text']) {
    check(!html.toLowerCase().includes(bad), `hostile README keeps ${bad}: ${html}`);
  }
  if (await page.locator('#js-link, a:has-text("click me")').count()) {
    await page.locator('a:has-text("click me")').first().click().catch(() => {});
  }
  await page.locator('a:has-text("markdown js")').first().click().catch(() => {});
  await page.waitForTimeout(300);
  check(page.url().startsWith(base + '/p/hostile'), `still on the page: ${page.url()}`);
  check(await page.evaluate(() => window.__pwned) === undefined, 'no script of the README ran');
  check(dialogs.length === 0, `dialogs: ${dialogs}`);
  // Nothing covers the page: the header is what is at its top-left.
  const top = await page.evaluate(() => document.elementFromPoint(10, 10).closest('header') !== null);
  check(top, 'the README overlays nothing');
  check((await page.locator('.readme').innerText()).includes('Plain text survives'), 'the text survives');
  await ctx.close();
  console.log(`hostile README inert (CSP reports: ${violations.length}): done`);
}

// ---- JavaScript off ---------------------------------------------------------
{
  const ctx = await browser.newContext({ javaScriptEnabled: false });
  const page = await ctx.newPage();
  await page.goto(base + '/p/libbase');
  check((await page.locator('.readme').innerText()).includes('The base of everything'), 'README without JavaScript');
  check(await page.locator('#versions-h + table tbody tr').count() === 3, 'versions without JavaScript');
  await page.screenshot({ path: join(shots, 'package-no-js.png'), fullPage: true });
  await ctx.close();
  console.log('JavaScript off: done');
}

// ---- accounts: sign-up, tokens, revoke, device login, CSRF -----------------
{
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await page.goto(base + '/signup');
  await page.getByLabel('Login').fill('webuser');
  await page.getByLabel('Email').fill('webuser@example.org');
  await page.getByLabel('Password (at least 12 characters)').fill('correct horse battery');
  await Promise.all([page.waitForURL('**/dashboard'), page.getByRole('button', { name: 'Create account' }).click()]);
  await page.locator('#dash-login').waitFor();
  check((await page.locator('#dash-login').innerText()) === 'webuser', 'signed in after sign-up');
  // The storage usage of SPEC section 20 (whoami's `usage`).
  await page.locator('#dash-usage').filter({ hasText: 'Storage used: 0.0 MB' }).waitFor({ timeout: 10000 });
  // Sign out, then in with the password.
  await Promise.all([page.waitForURL(base + '/'), page.locator('#logout').click()]);
  await page.goto(base + '/login');
  await page.getByLabel('Login').fill('webuser');
  await page.getByLabel('Password', { exact: true }).fill('correct horse battery');
  await Promise.all([page.waitForURL('**/dashboard'), page.getByRole('button', { name: 'Sign in' }).click()]);
  await page.locator('#dash-login').waitFor();

  // A token made in the dashboard works with curl, until it is revoked there.
  await page.getByLabel('Label').fill('ci-token');
  await page.getByRole('button', { name: 'Create token' }).click();
  await page.locator('#new-token:not([hidden])').waitFor();
  const key = (await page.locator('#new-token-value').innerText()).trim();
  check(/^cairn_[A-Za-z0-9]{40}$/.test(key), `token shown once: ${key}`);
  await page.screenshot({ path: join(shots, 'dashboard-token.png'), fullPage: true });
  check(await curl(['-H', `Authorization: Bearer ${key}`, `${base}/api/v1/whoami`]) === 200, 'the new token works with curl');
  await page.getByRole('button', { name: 'Revoke ci-token' }).click();
  await page.getByRole('button', { name: 'Revoke ci-token' }).waitFor({ state: 'detached' });
  check(await curl(['-H', `Authorization: Bearer ${key}`, `${base}/api/v1/whoami`]) === 401, 'the revoked token fails');

  // CSRF: a cookie-authenticated write without the header, or from another origin, is 403.
  const noHeader = await page.evaluate(async () => (await fetch('/api/v1/tokens', {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ label: 'x', scopes: ['yank'], packages: [] }),
  })).status);
  check(noHeader === 403, `cookie write without X-Cairn-Csrf: ${noHeader}`);
  const cookie = (await ctx.cookies()).find((c) => c.name === 'cairn_session');
  const csrf = await page.evaluate(async () => (await (await fetch('/api/v1/auth/session')).json()).csrf);
  const foreign = await curl(['-X', 'POST', '-H', `Cookie: cairn_session=${cookie.value}`, '-H', `X-Cairn-Csrf: ${csrf}`,
    '-H', 'Origin: http://evil.example', '-H', 'Content-Type: application/json',
    '--data', '{"label":"x","scopes":["yank"],"packages":[]}', `${base}/api/v1/tokens`]);
  check(foreign === 403, `cookie write from a foreign Origin: ${foreign}`);

  // Device login: the CLI waits, the browser approves, the CLI has a token.
  // The CLI's own credential only: CAIRN_TOKEN (the bootstrap user's) would win over it.
  const env = { ...process.env, HOME: process.env.CAIRN_CLI_HOME, XDG_CONFIG_HOME: join(process.env.CAIRN_CLI_HOME, 'config') };
  delete env.CAIRN_TOKEN;
  const cli = spawn(process.env.CAIRN_BIN, ['login', '--device', '--registry', base], { env });
  let said = '';
  cli.stdout.on('data', (d) => { said += d; });
  cli.stderr.on('data', (d) => { said += d; });
  const code = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no user code: ${said}`)), 10000);
    const look = () => { const m = said.match(/[A-Z]{4}-[0-9]{4}/); if (m) { clearTimeout(t); resolve(m[0]); } };
    cli.stdout.on('data', look); cli.stderr.on('data', look);
  });
  await page.goto(base + '/device');
  await page.getByLabel('Code').fill(code);
  await page.screenshot({ path: join(shots, 'device.png'), fullPage: true });
  await page.getByRole('button', { name: 'Approve' }).click();
  await page.locator('#device-result', { hasText: 'Approved' }).waitFor();
  const exit = await new Promise((resolve) => cli.on('exit', resolve));
  check(exit === 0, `cairn login --device exits ${exit}: ${said}`);
  const who = await run(process.env.CAIRN_BIN, ['whoami', '--registry', base], { env }).catch((e) => e);
  check(String(who.stdout).includes('webuser'), `cairn whoami after device login: ${who.stdout} ${who.stderr}`);
  await ctx.close();

  // A session opened with a publish-only token cannot create tokens.
  const made = await fetch(`${base}/api/v1/tokens`, {
    method: 'POST', headers: { Authorization: `Bearer ${process.env.CAIRN_TOKEN}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ label: 'publish only', scopes: ['publish-new', 'publish-update'], packages: [] }),
  }).then((r) => r.json());
  const narrow = await browser.newContext();
  const p2 = await narrow.newPage();
  await p2.goto(base + '/login');
  await p2.getByLabel('Token').fill(made.key);
  await Promise.all([p2.waitForURL('**/dashboard'), p2.getByRole('button', { name: 'Sign in' }).click()]);
  await p2.locator('#dash-login').waitFor();
  await p2.getByLabel('Label').fill('escalate');
  await p2.getByRole('button', { name: 'Create token' }).click();
  await p2.locator('#token-error:not(:empty)').waitFor();
  const status = await p2.evaluate(async () => {
    const s = await (await fetch('/api/v1/auth/session')).json();
    return (await fetch('/api/v1/tokens', {
      method: 'POST', headers: { 'Content-Type': 'application/json', 'X-Cairn-Csrf': s.csrf },
      body: JSON.stringify({ label: 'y', scopes: ['publish-new'], packages: [] }),
    })).status;
  });
  check(status === 403, `a publish-only session creating a token: ${status}`);
  await narrow.close();
  console.log('accounts, tokens, device login, CSRF: done');
}

await browser.close();
console.table(weights);
if (!process.exitCode) console.log('all checks passed');
