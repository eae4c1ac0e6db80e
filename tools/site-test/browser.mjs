// Launches Debian's chromium headless for the site tests (playwright-core
// downloads no browser). The flags keep it off the network: this
// machine's network is closed, and without them chromium tries Google's
// hosts at every start.
import { chromium } from 'playwright-core';

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
}

/// Records a failure (the run exits 1 at the end) and says whether `ok`.
export function check(ok, message) {
  if (!ok) {
    console.error(`FAIL: ${message}`);
    process.exitCode = 1;
  }
  return ok;
}
