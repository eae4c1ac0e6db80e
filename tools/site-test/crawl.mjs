// Crawls every same-origin link from `/` of a running `cairn serve`
// (CAIRN_URL) in headless chromium: each page is loaded in the browser and
// its links (a[href], link[href], script[src], img[src]) are followed; a
// link to anything that is not a page (JSON, a key, a blob) is fetched
// once. Fails on any answer of 400 or more. Bounded: at most 400 URLs.
import { launch, check } from './browser.mjs';

const base = process.env.CAIRN_URL;
const origin = new URL(base).origin;
const browser = await launch();
const page = await browser.newPage();
const seen = new Set(['/']);
const queue = ['/'];
let pages = 0;
let others = 0;
while (queue.length > 0 && seen.size <= 400) {
  const path = queue.shift();
  // Asked first without the browser: a blob would start a download.
  const head = await page.request.get(base + path, { maxRedirects: 5 });
  const type = head.headers()['content-type'] || '';
  if (!check(head.status() < 400, `${path} answers ${head.status()} (linked from a page)`)) continue;
  if (!type.startsWith('text/html')) {
    others += 1;
    continue;
  }
  const resp = await page.goto(base + path, { waitUntil: 'load' });
  if (!check(resp.status() < 400, `${path} answers ${resp.status()} in the browser`)) continue;
  pages += 1;
  const links = await page.evaluate(() => [
    ...[...document.querySelectorAll('a[href], link[href]')].map((e) => e.href),
    ...[...document.querySelectorAll('script[src], img[src]')].map((e) => e.src),
  ]);
  for (const link of links) {
    const url = new URL(link, base + path);
    if (url.origin !== origin) continue;
    const key = url.pathname + url.search;
    if (!seen.has(key)) {
      seen.add(key);
      queue.push(key);
    }
  }
}
await browser.close();
check(seen.size <= 400, `the crawl stopped at 400 URLs`);
console.log(`crawled ${pages} pages and ${others} other files, ${seen.size} URLs in all`);
if (!process.exitCode) console.log('no dead link');
