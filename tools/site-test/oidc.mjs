// Sign-in through an OpenID provider in chromium (tests/testsuite/identity.rs):
// from /login, the provider's button, the provider (oauth2-mock-server,
// which signs the user in at once), back to cairn's dashboard, signed in
// as EXPECT_LOGIN, with the trust configuration of EXPECT_TRUST listed.
// CAIRN_URL is the registry; SCREENSHOT where the dashboard's picture goes.
import { launch, check } from './browser.mjs';

const base = process.env.CAIRN_URL;
const browser = await launch();
const page = await (await browser.newContext()).newPage();
await page.goto(base + '/login');
await Promise.all([
  page.waitForURL('**/dashboard', { timeout: 15000 }),
  page.getByRole('link', { name: 'Sign in with corp' }).click(),
]);
const login = page.locator('#dash-login');
await login.waitFor({ timeout: 15000 });
check((await login.textContent()) === process.env.EXPECT_LOGIN, `signed in as ${await login.textContent()}`);
const trust = page.locator('#packages .trust').first();
await trust.waitFor({ timeout: 15000 });
const text = await trust.textContent();
check(text.includes(process.env.EXPECT_TRUST), `the dashboard lists the trust configuration: ${text}`);
if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
await browser.close();
if (!process.exitCode) console.log('signed in through the provider');
