// An invitation (SPEC section 19) in chromium (tests/testsuite/invitations.rs):
// its page signed out says what it offers and links the sign-in; signed in
// as the invitee, Accept makes the membership. Then the dashboard's mail
// switch turns the user's owner mails off, on and off again, each time
// read back from whoami.
// CAIRN_URL is the registry, INVITATION the link's path, BOB_TOKEN the
// invitee's token.
import { launch, check } from './browser.mjs';

const base = process.env.CAIRN_URL;
const link = base + process.env.INVITATION;
const browser = await launch();

// Signed out: what is offered, and the way to sign in and come back.
const anon = await (await browser.newContext()).newPage();
await anon.goto(link);
await anon.locator('#invite-signed-out').waitFor({ timeout: 15000 });
const offer = await anon.textContent('#invite-text');
check(offer.includes('ann invites bob@example.test to join Acme Corp (org:acme) as admin'), `the offer: ${offer}`);
const signIn = await anon.getAttribute('#invite-login', 'href');
check(signIn === '/login?next=' + encodeURIComponent(process.env.INVITATION), `the sign-in link: ${signIn}`);
check(await anon.locator('#invite-actions').isHidden(), 'no buttons signed out');

// Signed in through the sign-in page, back on the invitation: Accept.
const page = await (await browser.newContext()).newPage();
await page.goto(base + signIn);
await page.fill('#login-token', process.env.BOB_TOKEN);
await Promise.all([page.waitForURL(link), page.click('#login-form button[type=submit]')]);
await page.locator('#invite-accept').waitFor({ timeout: 15000 });
await page.click('#invite-accept');
await page.locator('#invite-result:has-text("Accepted")').waitFor({ timeout: 15000 });
const done = await page.textContent('#invite-result');
check(done.includes('member of org:acme as admin'), `after Accept: ${done}`);

// The dashboard's mail switch.
await page.goto(base + '/dashboard');
const box = page.locator('#notify');
await page.locator('#notify:not([disabled])').waitFor({ timeout: 15000 });
check(await box.isChecked(), 'mails are on by default');
const notify = () => page.evaluate(async () => (await (await fetch('/api/v1/whoami')).json()).notify);
for (const want of [false, true, false]) {
  await box.setChecked(want);
  await page.locator(`#notify-result:has-text("${want ? 'Mails on.' : 'Mails off.'}")`).waitFor({ timeout: 15000 });
  check((await notify()) === want, `whoami's notify after the switch is ${want}`);
}

await browser.close();
if (!process.exitCode) console.log('invitation flow ok');
