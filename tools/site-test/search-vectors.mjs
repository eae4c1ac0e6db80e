// Runs search test vectors (default: index/search-vectors.json; else the
// file named as the argument) through site/assets/search.js in chromium,
// against the registry at CAIRN_URL, which must hold the vectors' corpus.
// A vector passes as in tests/testsuite/jobs.rs: an empty `top` wants no result,
// else the first names returned equal `top`. Exits 1 on any failure.
import { readFileSync } from 'node:fs';
import { launch, check } from './browser.mjs';

const base = process.env.CAIRN_URL;
if (!base) {
  console.error('usage: CAIRN_URL=http://… node search-vectors.mjs [VECTORS.json]');
  process.exit(2);
}
const repo = new URL('../../', import.meta.url);
const script = readFileSync(new URL('site/assets/search.js', repo), 'utf8');
const vectorsFile = process.argv[2] ?? new URL('index/search-vectors.json', repo);
const { vectors, deprecation } = JSON.parse(readFileSync(vectorsFile, 'utf8'));

const browser = await launch();
try {
  const page = await browser.newPage();
  page.on('pageerror', (e) => check(false, `page error: ${e.message}`));
  // Any same-origin document will do: the script only needs the origin's
  // /api/v1/search/ files (the HTML pages are not this script's concern).
  await page.goto(`${base}/api/v1/health.json`);
  await page.addScriptTag({ content: script });
  const run = async (page, { query, top }) => {
    const got = await page.evaluate(
      (q) => window.cairnSearch.query(q, { limit: 5 }).then((rs) => rs.map((r) => r.name)),
      query,
    ).catch((e) => `error: ${e.message}`);
    const ok = Array.isArray(got) &&
      (top.length === 0 ? got.length === 0 : top.every((name, i) => got[i] === name));
    check(ok, `${JSON.stringify(query)}: want ${JSON.stringify(top)}, got ${JSON.stringify(got)}`);
  };
  for (const v of vectors) await run(page, v);
  // The hand-built delta of `deprecation`, served in place of the
  // registry's search files, with no manifest.
  const alone = await browser.newPage();
  alone.on('pageerror', (e) => check(false, `page error: ${e.message}`));
  await alone.route((url) => url.pathname === '/api/v1/search/delta.json',
    (route) => route.fulfill({ contentType: 'application/json', body: JSON.stringify(deprecation.delta) }));
  await alone.route((url) => url.pathname === '/api/v1/search/manifest.json',
    (route) => route.fulfill({ status: 404, contentType: 'application/json', body: '{"error":"not-found"}' }));
  await alone.goto(`${base}/api/v1/health.json`);
  await alone.addScriptTag({ content: script });
  for (const v of deprecation.vectors) await run(alone, v);
  const n = vectors.length + deprecation.vectors.length;
  if (!process.exitCode) console.log(`${n} vectors pass`);
} finally {
  await browser.close();
}
