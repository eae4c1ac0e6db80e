/* cairn's search as you type.
 *
 * The query half ports the registry's one ranking algorithm,
 * src/search/mod.rs (`search`, `query`, `parse_query`, `Filter`, `tokenize`,
 * `package_terms`, `truncate`, `Manifest::shard_for`) and the delta of src/search/delta.rs,
 * over the static files of index/search.md. It must stay in step with that
 * Rust code: a change there is a change here. The shared vectors
 * index/search-vectors.json check both; tools/site-test/search-vectors.mjs
 * runs them through this file in chromium (tests/site_search.rs).
 *
 * The UI half is progressive enhancement of the header's GET form
 * (#search-form, #q): results as you type on the search page (#results),
 * a suggestion listbox (combobox pattern) everywhere else. No inline
 * styles or scripts: the pages' CSP forbids them.
 */
(function () {
  'use strict';

  // ---- The query (src/search/mod.rs) ----

  const EXACT_NAME = 1;
  const NAME_TOKEN = 2;
  const KEYWORD = 4;
  const DESCRIPTION = 8;

  const STOPWORDS = new Set([
    'a', 'an', 'and', 'are', 'as', 'at', 'be', 'by', 'for', 'from', 'in', 'is', 'it', 'of', 'on', 'or',
    'that', 'the', 'this', 'to', 'with',
  ]);

  // Rust's char::is_alphanumeric: Alphabetic, or a number (Nd, Nl, No).
  const SEPARATORS = /[^\p{Alphabetic}\p{N}]+/u;

  function tokenize(text) {
    return text.split(SEPARATORS).filter((w) => w !== '').map((w) => w.toLowerCase());
  }

  // Rust's `to_ascii_lowercase` (JS's toLowerCase also maps K, the Kelvin sign, to k).
  function asciiLower(s) {
    return s.replace(/[A-Z]/g, (c) => c.toLowerCase());
  }

  // src/name.rs `canonical`: ASCII lowercase, `_` is `-`.
  function canonical(name) {
    return asciiLower(name).replace(/_/g, '-');
  }

  // `parse_query`: [words, filters]; each whitespace-separated part
  // `kind:…` or `keyword:…` is a filter ({kind} or {keyword}), the rest text.
  function parseQuery(q) {
    const text = [];
    const filters = [];
    for (const part of q.split(/\p{White_Space}+/u).filter((p) => p !== '')) {
      const lower = asciiLower(part);
      if (lower.startsWith('kind:')) filters.push({ kind: lower.slice(5) });
      else if (lower.startsWith('keyword:')) filters.push({ keyword: lower.slice(8) });
      else text.push(part);
    }
    return [tokenize(text.join(' ')), filters];
  }

  // `Filter::term`: the shards' term of a filter's packages.
  function filterTerm(f) {
    return f.kind !== undefined ? '@' + f.kind : '#' + f.keyword;
  }

  // `Doc::admitted`: whether a doc passes every filter.
  function admitted(doc, filters) {
    return filters.every((f) => (f.kind !== undefined
      ? doc[5] === f.kind
      : doc[6].some((k) => asciiLower(k) === f.keyword)));
  }

  // Rust's `str::len`, which the 64-byte term limit counts in.
  function utf8Length(s) {
    let n = 0;
    for (const c of s) {
      const cp = c.codePointAt(0);
      n += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    }
    return n;
  }

  // Rust orders strings by UTF-8 bytes, that is by code point; JS's `<`
  // compares UTF-16 units, which disagrees above U+FFFF.
  function byCodePoint(a, b) {
    for (let i = 0, j = 0; i < a.length && j < b.length;) {
      const x = a.codePointAt(i);
      const y = b.codePointAt(j);
      if (x !== y) return x - y;
      i += x > 0xffff ? 2 : 1;
      j += y > 0xffff ? 2 : 1;
    }
    return a.length - b.length;
  }

  // `package_terms`: term -> {fields, tf} for one package.
  function packageTerms(name, keywords, description) {
    const terms = new Map();
    const add = (t, field) => {
      if (utf8Length(t) > 64) return;
      let e = terms.get(t);
      if (!e) terms.set(t, (e = { fields: 0, tf: 0 }));
      e.fields |= field;
      if (field === DESCRIPTION) e.tf = Math.min(e.tf + 1, 0xffff); // a saturating u16
    };
    add(canonical(name), EXACT_NAME);
    for (const t of tokenize(name)) add(t, NAME_TOKEN);
    for (const k of keywords) for (const t of tokenize(k)) add(t, KEYWORD);
    for (const t of tokenize(description)) if (!STOPWORDS.has(t)) add(t, DESCRIPTION);
    return terms;
  }

  // `truncate`: at most `max` characters (code points), an ellipsis when cut.
  function truncate(s, max) {
    const chars = Array.from(s);
    return chars.length > max ? chars.slice(0, max).join('') + '…' : s;
  }

  // `Manifest::shard_for`: the file of the longest prefix the term starts with.
  function shardFor(manifest, term) {
    let best = -1;
    manifest.shards.forEach((key, i) => {
      if (term.startsWith(key) && (best < 0 || key.length > manifest.shards[best].length)) best = i;
    });
    return best < 0 ? null : `${manifest.generation}-${best}.json`;
  }

  // A shard's postings as Maps in the Rust BTreeMap's order: scores are
  // summed in that order, and a lookup must not find Object.prototype's keys.
  function postingsMap(obj) {
    return new Map(Object.keys(obj || {}).sort(byCodePoint).map((k) => [k, obj[k]]));
  }

  // `query`, given the manifest (null: none yet), the delta and the shards
  // of the words, or of the filters when there are no words (by file
  // name). Docs are [name, version, description, downloads, description
  // length in words, kind, keywords, deprecated].
  function rank(manifest, delta, shards, words, filters, limit) {
    const joined = words.join('-');
    const fresh = [];
    for (const e of delta.packages) {
      const d = e.doc;
      if (!d) continue; // removed: found nowhere
      const doc = [e.name, d.version, truncate(d.description, 120), d.downloads, tokenize(d.description).length,
        d.kind ?? null, d.keywords, Boolean(d.deprecated)];
      fresh.push({ doc, terms: packageTerms(e.name, d.keywords, d.description) });
    }
    // The shards' copy of a package the delta names is older.
    const replaced = new Set(delta.packages.map((e) => canonical(e.name)));
    let n;
    let avgLen;
    if (manifest) {
      n = Math.max(manifest.docs, 1);
      avgLen = manifest.avgLen;
    } else {
      const total = fresh.reduce((sum, f) => sum + f.doc[4], 0);
      n = Math.max(fresh.length, 1);
      avgLen = total / n;
    }
    const k1 = 1.2;
    const b = 0.75;
    // Same operations in the same order as Rust's `score_of`, so the
    // floating-point results (and so the ties) are the same.
    const scoreOf = (df, fields, tf, docLen) => {
      const idf = Math.log(1 + (n - df + 0.5) / (df + 0.5));
      let s = 0;
      if (fields & (EXACT_NAME | NAME_TOKEN)) s += 3;
      if (fields & KEYWORD) s += 2;
      if (fields & DESCRIPTION) {
        const norm = 1 - b + (b * docLen) / Math.max(avgLen, 1);
        s += (tf * (k1 + 1)) / (tf + k1 * norm);
      }
      return idf * s;
    };
    // By package name: score, and which words matched (Rust's bit set,
    // whose bit 63 takes every word from the 64th on).
    const scored = new Map();
    if (words.length === 0) {
      // Filters alone: the packages of the filter term with the fewest
      // (its postings are the most downloaded), all of score 0.
      let fewest = null;
      for (const t of filters.map(filterTerm)) {
        const file = manifest && shardFor(manifest, t);
        const shard = file ? shards.get(file) : null;
        const p = shard && shard.terms.get(t);
        if (p && (!fewest || p.df < fewest.p.df)) fewest = { shard, p };
      }
      const docs = fewest ? fewest.p.p.map(([idx]) => fewest.shard.docs[idx]).filter((d) => !replaced.has(canonical(d[0]))) : [];
      for (const doc of docs.concat(fresh.map((f) => f.doc))) {
        if (admitted(doc, filters)) scored.set(doc[0], { doc, score: 0, matched: new Set() });
      }
    }
    const add = (doc, s, word) => {
      let e = scored.get(doc[0]);
      if (!e) scored.set(doc[0], (e = { doc, score: 0, matched: new Set() }));
      e.score += s;
      e.matched.add(Math.min(word, 63));
    };
    words.forEach((w, wi) => {
      const last = wi === words.length - 1;
      // The word being typed also matches as a prefix, at half weight.
      const weight = (t) => (t === w ? 1 : last && t.length > w.length && t.startsWith(w) ? 0.5 : 0);
      const file = manifest && shardFor(manifest, w);
      const shard = file ? shards.get(file) : null;
      if (shard) {
        for (const postings of [shard.terms, shard.completions]) {
          for (const [t, p] of postings) {
            const wt = weight(t);
            if (!wt) continue;
            for (const [idx, fields, tf] of p.p) {
              const doc = shard.docs[idx];
              if (!replaced.has(canonical(doc[0]))) add(doc, wt * scoreOf(p.df, fields, tf, doc[4]), wi);
            }
          }
        }
      }
      // A delta term's df is the word's shard's when it has the term, else
      // the number of delta packages that have it.
      for (const { doc, terms } of fresh) {
        for (const [t, { fields, tf }] of terms) {
          const wt = weight(t);
          if (!wt) continue;
          const known = shard && (shard.terms.get(t) || shard.completions.get(t));
          const df = known ? known.df : fresh.filter((f) => f.terms.has(t)).length;
          add(doc, wt * scoreOf(df, fields, tf, doc[4]), wi);
        }
      }
    });
    const hits = [];
    for (const { doc, score, matched } of scored.values()) {
      if (!admitted(doc, filters)) continue;
      const canon = canonical(doc[0]);
      const tier = joined === '' ? 2 : canon === joined ? 0 : canon.startsWith(joined) ? 1 : 2;
      // Packages matching every word come before those matching some.
      const coverage = matched.size / Math.max(words.length, 1);
      // A deprecated package ranks below the others of its tier, but for
      // the exact name, which still ranks first.
      const demoted = doc[7] && tier !== 0 ? 1 : 0;
      hits.push({ tier, demoted, name: doc[0], version: doc[1], description: doc[2], downloads: doc[3], score: score * coverage * coverage });
    }
    const desc = (x, y) => (x > y ? -1 : x < y ? 1 : 0);
    hits.sort((x, y) =>
      x.tier - y.tier ||
      x.demoted - y.demoted ||
      // Among names that start with the query, the closest (shortest) first.
      (x.tier === 1 && y.tier === 1 ? x.name.length - y.name.length : 0) ||
      desc(x.score, y.score) ||
      desc(x.downloads, y.downloads) ||
      byCodePoint(x.name, y.name));
    return hits.slice(0, limit).map(({ name, version, description, downloads }) => ({ name, version, description, downloads }));
  }

  // ---- The files (index/search.md) ----

  const API = '/api/v1/search/';
  // The manifest and the delta are read again at most this often: typing
  // does not refetch them per keystroke, and a publish shows within seconds.
  const REFRESH_MS = 3000;

  // JSON of a search file, or null on a 404.
  async function getJSON(file, init) {
    const res = await fetch(API + file, init);
    if (res.status === 404) return null;
    if (!res.ok) throw new Error(`${API}${file}: HTTP ${res.status}`);
    return res.json();
  }

  let current = null; // {at, manifest, delta}: promises
  // Shards are immutable: kept for as long as their generation is the manifest's.
  let shardCache = { generation: null, files: new Map() };

  // The manifest and the delta, at most REFRESH_MS old. `no-cache`
  // revalidates (an ETag makes that a 304) rather than trusting the
  // browser's copy for its whole max-age. Fetched together: a job writes
  // its manifest before it drops the delta entries it built, so the one
  // mix that hides packages (the old manifest with the new delta) needs a
  // job to finish between the two requests, and the next refresh mends it.
  function files() {
    if (!current || Date.now() - current.at >= REFRESH_MS) {
      const fetched = {
        at: Date.now(),
        manifest: getJSON('manifest.json', { cache: 'no-cache' }),
        delta: getJSON('delta.json', { cache: 'no-cache' }).then((d) => d || { packages: [] }),
      };
      const forget = () => {
        if (current === fetched) current = null;
      };
      fetched.manifest.catch(forget);
      fetched.delta.catch(forget);
      current = fetched;
    }
    return current;
  }

  function shard(manifest, file) {
    if (shardCache.generation !== manifest.generation) {
      shardCache = { generation: manifest.generation, files: new Map() };
    }
    const cache = shardCache.files;
    let s = cache.get(file);
    if (!s) {
      s = getJSON(file).then((raw) => {
        if (!raw) throw new Error(`the search shard ${API}${file} is missing`);
        return { terms: postingsMap(raw.terms), completions: postingsMap(raw.completions), docs: raw.docs };
      });
      s.catch(() => cache.delete(file)); // try again next time
      cache.set(file, s);
    }
    return s;
  }

  // `search`: the manifest and the delta, then one shard per word.
  async function query(text, { limit = 10 } = {}) {
    const [words, filters] = parseQuery(String(text));
    if (words.length === 0 && filters.length === 0) return [];
    const { manifest: manifestP, delta: deltaP } = files();
    const manifest = await manifestP;
    // Words need their shards; filters alone, the shards of their terms.
    const terms = words.length > 0 ? words : filters.map(filterTerm);
    const needed = manifest ? [...new Set(terms.map((w) => shardFor(manifest, w)).filter(Boolean))] : [];
    const [delta, loaded] = await Promise.all([deltaP, Promise.all(needed.map((f) => shard(manifest, f)))]);
    const shards = new Map(needed.map((f, i) => [f, loaded[i]]));
    return rank(manifest, delta, shards, words, filters, limit);
  }

  window.cairnSearch = { query };

  // ---- The UI ----

  const DEBOUNCE_MS = 120;
  const RESULTS = 20;
  const SUGGESTIONS = 8;

  function packageUrl(name) {
    return '/p/' + encodeURIComponent(name);
  }

  function element(tag, text, className) {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (className) e.className = className;
    return e;
  }

  // Queries the input's text 120 ms after the last keystroke (or at once
  // through the returned function); an answer a later query overtook is
  // dropped. `show(text, results)`, `fail(error)`.
  function typeahead(input, limit, show, fail) {
    let timer = 0;
    let latest = 0;
    const run = () => {
      clearTimeout(timer);
      const id = ++latest;
      const text = input.value;
      query(text, { limit }).then(
        (results) => id === latest && show(text, results),
        (error) => id === latest && fail(error),
      );
    };
    input.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(run, DEBOUNCE_MS);
    });
    return run;
  }

  // The search page: results in #results, replacing the page's, as you type.
  function searchPage(form, input, list, status) {
    const show = (text, results) => {
      list.replaceChildren(...results.map((r) => {
        const li = element('li');
        const a = element('a', r.name);
        a.href = packageUrl(r.name);
        li.append(a, ' ', element('span', r.version, 'version'), ' ', element('p', r.description));
        return li;
      }));
      status.textContent = results.length === 0 && text.trim() !== '' ? `No packages match “${text.trim()}”.` : '';
    };
    const fail = (error) => {
      list.replaceChildren();
      status.textContent = `Search failed: ${error.message}`;
    };
    const run = typeahead(input, RESULTS, show, fail);
    const replaceUrl = () => history.replaceState(null, '', '/search?' + new URLSearchParams({ q: input.value }));
    input.addEventListener('input', replaceUrl);
    form.addEventListener('submit', (e) => {
      e.preventDefault(); // already on the page: no reload
      replaceUrl();
      run();
    });
    input.value = new URLSearchParams(location.search).get('q') || '';
    run();
  }

  // Other pages: up to 8 suggestions under the input, ARIA 1.2's combobox
  // with a listbox popup; the focus stays in the input throughout.
  function suggestions(form, input) {
    const box = element('ul');
    box.id = 'suggestions';
    box.setAttribute('role', 'listbox');
    box.setAttribute('aria-label', 'Suggested packages');
    box.hidden = true;
    input.after(box);
    input.setAttribute('role', 'combobox');
    input.setAttribute('aria-autocomplete', 'list');
    input.setAttribute('aria-controls', box.id);
    input.setAttribute('aria-expanded', 'false');

    let found = [];
    let active = -1;
    const select = (i) => {
      active = i;
      Array.from(box.children).forEach((li, j) => li.setAttribute('aria-selected', String(j === i)));
      if (i < 0) {
        input.removeAttribute('aria-activedescendant');
      } else {
        input.setAttribute('aria-activedescendant', box.children[i].id);
        box.children[i].scrollIntoView({ block: 'nearest' });
      }
    };
    const setOpen = (open) => {
      box.hidden = !open;
      input.setAttribute('aria-expanded', String(open));
      if (!open) select(-1);
    };
    const show = (text, results) => {
      found = results;
      box.replaceChildren(...results.map((r, i) => {
        const li = element('li', r.name);
        li.id = `suggestion-${i}`;
        li.setAttribute('role', 'option');
        li.setAttribute('aria-selected', 'false');
        li.append(' ', element('span', r.version, 'version'));
        return li;
      }));
      setOpen(results.length > 0 && document.activeElement === input);
    };
    const open = (i) => location.assign(packageUrl(found[i].name));
    typeahead(input, SUGGESTIONS, show, () => show('', []));

    input.addEventListener('keydown', (e) => {
      if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        if (found.length === 0) return;
        e.preventDefault();
        setOpen(true);
        const n = found.length;
        select(e.key === 'ArrowDown' ? (active + 1) % n : active <= 0 ? n - 1 : active - 1);
      } else if (e.key === 'Enter' && !box.hidden && active >= 0) {
        e.preventDefault(); // without a selection Enter submits the form to /search
        open(active);
      } else if (e.key === 'Escape' && !box.hidden) {
        e.preventDefault();
        setOpen(false);
      }
    });
    input.addEventListener('blur', () => setOpen(false));
    // A press on an option must not blur the input (which closes the list).
    box.addEventListener('mousedown', (e) => e.preventDefault());
    box.addEventListener('click', (e) => {
      const li = e.target.closest('[role="option"]');
      if (li) open(Array.from(box.children).indexOf(li));
    });
  }

  function init() {
    const form = document.getElementById('search-form');
    const input = document.getElementById('q');
    if (!form || !input) return;
    const results = document.getElementById('results');
    if (results) searchPage(form, input, results, document.getElementById('results-status'));
    else suggestions(form, input);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
