// Launches Debian's chromium headless for the site tests. The flags keep
// it off the network (this machine's network is closed; without them
// chromium tries Google's hosts at every start).
import { chromium } from 'playwright-core';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export async function launch({ javaScript = true } = {}) {
  const browser = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'cairn-chromium-')), {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    javaScriptEnabled: javaScript,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  return browser;
}

/// Fails the run with a message.
export function check(ok, message) {
  if (!ok) {
    console.error(`FAIL: ${message}`);
    process.exitCode = 1;
  }
  return ok;
}
