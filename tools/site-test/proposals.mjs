// The proposals of SPEC section 19 in chromium (tests/testsuite/proposals.rs):
// two users propose on the package's proposals page, one proposal
// conflicting; the page of a proposal shows its diff with scripts off; the
// package page lists the open ones; the owner composes two on the
// dashboard, sees the third's conflict with its hunk and the publish
// refused, then publishes the two as a minor version.
// CAIRN_URL is the registry, PKG the package (at 1.0.0 with SKILL.md),
// OWNER_TOKEN, ANN_TOKEN and BOB_TOKEN the users' tokens.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { launch, check } from './browser.mjs';

const base = process.env.CAIRN_URL;
const pkg = process.env.PKG;
const browser = await launch();

async function signedIn(token) {
  const page = await (await browser.newContext()).newPage();
  await page.goto(base + '/login');
  await page.fill('#login-token', token);
  await Promise.all([page.waitForURL('**/dashboard'), page.click('#login-form button[type=submit]')]);
  return page;
}

async function propose(page, title, from, to) {
  await page.goto(`${base}/p/${pkg}/proposals`);
  await page.fill('#propose-title', title);
  await page.fill('#propose-intent', 'clearer words');
  const content = await page.inputValue('#propose-content');
  check(content.includes(from), `the form starts from the newest version's SKILL.md: ${content}`);
  await page.fill('#propose-content', content.replace(from, to));
  await page.click('#propose-form button[type=submit]');
  const link = page.locator('#propose-done a');
  await link.waitFor({ timeout: 15000 });
  return link.getAttribute('href');
}

const ann = await signedIn(process.env.ANN_TOKEN);
const first = await propose(ann, 'Better intro', 'intro', 'a better intro');
const bob = await signedIn(process.env.BOB_TOKEN);
await propose(bob, 'Run twice', 'run it', 'run it twice');
const third = await propose(bob, 'Other intro', 'intro', 'another intro');

// Reading needs no script: the proposal's page and its diff.
const plain = await (await browser.newContext({ javaScriptEnabled: false })).newPage();
await plain.goto(base + first);
const diff = await plain.textContent('#diff');
check(diff.includes('-intro') && diff.includes('+a better intro'), `the diff without scripts: ${diff}`);
await plain.goto(`${base}/p/${pkg}/proposals`);
const listed = await plain.locator('#open-proposals li').count();
check(listed === 3, `the proposals page lists 3 open proposals without scripts, not ${listed}`);
// With scripts, the package page lists them too.
await ann.goto(`${base}/p/${pkg}`);
await ann.locator('#package-proposals li').nth(2).waitFor({ timeout: 15000 });

// The owner composes on the dashboard.
const owner = await signedIn(process.env.OWNER_TOKEN);
await owner.goto(`${base}/dashboard?compose=${pkg}`);
const boxes = owner.locator('#compose-proposals input[type=checkbox]');
await boxes.nth(2).waitFor({ timeout: 15000 });
const pick = async (titles) => {
  for (const label of await owner.locator('#compose-proposals label').all()) {
    const text = await label.textContent();
    await label.locator('input').setChecked(titles.some((t) => text.includes(t)));
  }
  await owner.click('#compose-pick button[type=submit]');
};
await pick(['Better intro', 'Run twice', 'Other intro']);
await owner.locator('#compose-conflicts li.conflict').waitFor({ timeout: 15000 });
const conflict = await owner.textContent('#compose-conflicts');
check(conflict.includes('another intro') && conflict.includes('a better intro'), `the conflict's hunk: ${conflict}`);
check(await owner.locator('#publish-form').isHidden(), 'no publish while a conflict remains');
const refused = await owner.evaluate(async (name) => {
  const { csrf } = await (await fetch('/api/v1/auth/session')).json();
  const resp = await fetch(`/api/v1/packages/${name}/candidate/publish`, {
    method: 'POST', headers: { 'Content-Type': 'application/json', 'X-Cairn-Csrf': csrf },
    body: JSON.stringify({ bump: 'minor' }),
  });
  return resp.status;
}, pkg);
check(refused === 409, `the publish of a conflicting candidate is refused with 409, not ${refused}`);

await pick(['Better intro', 'Run twice']);
await owner.locator('#publish-form').waitFor({ state: 'visible', timeout: 15000 });
const files = await owner.textContent('#compose-files');
check(files.includes('a better intro') && files.includes('run it twice'), `the merged file: ${files}`);
await owner.selectOption('#publish-bump', 'minor');
await owner.fill('#publish-changelog', 'Clearer docs.');
await owner.click('#publish-form button[type=submit]');
await owner.locator('#publish-done a').waitFor({ timeout: 30000 });
const done = await owner.textContent('#publish-done');
check(done.includes(`${pkg} 1.1.0`), `published: ${done}`);
if (process.env.SCREENSHOT) await owner.screenshot({ path: process.env.SCREENSHOT, fullPage: true });

// The owner rejects the conflicting proposal on its page; its author may
// only withdraw (the button the page shows bob).
await bob.goto(base + third);
await bob.locator('#proposal-withdraw').waitFor({ timeout: 15000 });
await owner.goto(base + third);
await owner.locator('#proposal-reject').waitFor({ timeout: 15000 });
check(await owner.locator('#proposal-withdraw').isHidden(), 'only the author is offered the withdrawal');
await Promise.all([owner.waitForEvent('load'), owner.click('#proposal-reject')]);
const status = await owner.textContent('#proposal-status');
check(status.includes('rejected'), `rejected on its page: ${status}`);

// The new pages pass axe as the site's others do (site.mjs).
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const axeContext = await browser.newContext({ bypassCSP: true });
for (const path of [`/p/${pkg}/proposals`, first, `/p/${pkg}`, `/dashboard?compose=${pkg}`]) {
  const page = await axeContext.newPage();
  const resp = await page.goto(base + path, { waitUntil: 'load' });
  check(resp.status() === 200, `${path} answers ${resp.status()}`);
  await page.addScriptTag({ content: axeSource });
  const result = await page.evaluate(async () => await window.axe.run(
    { exclude: [['.readme']] }, { resultTypes: ['violations'] }));
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  check(bad.length === 0, `axe on ${path}: ${bad.map((v) => `${v.id} (${v.nodes.map((n) => n.target).join(' ')})`).join('; ')}`);
  await page.close();
}
await browser.close();
if (!process.exitCode) console.log('proposals flow ok');
