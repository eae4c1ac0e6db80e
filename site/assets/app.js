// cairn's account pages: sign-in, sign-up, the dashboard and the device
// approval, over the write API (SPEC section 12). The session is the
// HttpOnly cookie `cairn_session`; every write also sends the session's
// CSRF value (from GET /api/v1/auth/session) as X-Cairn-Csrf, and the
// browser adds the Origin the server checks. Data is put in the page as
// text, never as HTML.
(function () {
  'use strict';
  const $ = (id) => document.getElementById(id);

  async function call(method, path, body, csrf) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (csrf) headers['X-Cairn-Csrf'] = csrf;
    const resp = await fetch('/api/v1/' + path, {
      method, headers, credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let doc = null;
    try { doc = await resp.json(); } catch (e) { /* an empty body */ }
    if (!resp.ok) {
      const err = new Error((doc && doc.message) || resp.status + ' ' + resp.statusText);
      err.code = doc && doc.error;
      err.status = resp.status;
      throw err;
    }
    return doc;
  }

  // The current session, or null when signed out.
  async function session() {
    try { return await call('GET', 'auth/session'); } catch (e) {
      if (e.status === 401) return null;
      throw e;
    }
  }

  // Where to go after signing in: a same-site path only.
  function next() {
    const n = new URLSearchParams(location.search).get('next');
    return n && n.startsWith('/') && !n.startsWith('//') ? n : '/dashboard';
  }

  function onSubmit(form, handler, errorBox) {
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      errorBox.textContent = '';
      const button = form.querySelector('button[type=submit]');
      button.disabled = true;
      try { await handler(new FormData(form), ev.submitter); } catch (e) { errorBox.textContent = e.message; }
      button.disabled = false;
    });
  }

  function login() {
    // A sign-in through an OpenID provider that came back refused says why.
    const refused = new URLSearchParams(location.search).get('error');
    if (refused) { $('oidc-error').textContent = refused; $('oidc-error').hidden = false; }
    for (const a of document.querySelectorAll('ul.providers a')) {
      a.href = a.pathname + '?next=' + encodeURIComponent(next());
    }
    const form = $('login-form');
    onSubmit(form, async (data) => {
      const token = data.get('token').trim();
      const body = token ? { token } : { login: data.get('login'), password: data.get('password') };
      await call('POST', 'auth/login', body);
      location.assign(next());
    }, $('login-error'));
    // A token alone is enough.
    $('login-token').addEventListener('input', (ev) => { $('login-name').required = !ev.target.value; });
  }

  function signup() {
    onSubmit($('signup-form'), async (data) => {
      await call('POST', 'auth/signup', {
        login: data.get('login'), email: data.get('email'), password: data.get('password'),
      });
      location.assign('/dashboard');
    }, $('signup-error'));
  }

  function cell(row, text) {
    const td = row.insertCell();
    td.textContent = text;
    return td;
  }

  async function dashboard() {
    const s = await session();
    if (!s) { $('dash-signed-out').hidden = false; return; }
    $('dash').hidden = false;
    $('dash-login').textContent = s.login;
    // Storage: the bytes of the packages the user owns, against the quota
    // (shown when it comes; the rest of the page does not wait for it).
    call('GET', 'whoami').then(({ usage }) => {
      const mb = (n) => (n / 1e6).toFixed(1) + ' MB';
      $('dash-usage').textContent = 'Storage used: ' + mb(usage.bytes) +
        (usage.limit === null ? '' : ' of ' + mb(usage.limit));
    }).catch((e) => { console.error(e); });
    $('logout').addEventListener('click', async () => {
      await call('POST', 'auth/logout', {}, s.csrf);
      location.assign('/');
    });

    async function showTokens() {
      const body = $('tokens').tBodies[0];
      body.replaceChildren();
      const { tokens } = await call('GET', 'tokens');
      for (const t of tokens) {
        const row = body.insertRow();
        cell(row, t.label);
        cell(row, t.scopes.join(', '));
        cell(row, t.packages.length ? t.packages.join(', ') : 'all');
        cell(row, t.expiresAt ? t.expiresAt.slice(0, 10) : 'never');
        cell(row, t.lastUsedAt ? t.lastUsedAt.slice(0, 16).replace('T', ' ') : 'never');
        const revoke = document.createElement('button');
        revoke.type = 'button';
        revoke.textContent = 'Revoke';
        revoke.setAttribute('aria-label', 'Revoke ' + t.label);
        revoke.addEventListener('click', async () => {
          await call('DELETE', 'tokens/' + encodeURIComponent(t.id), undefined, s.csrf);
          await showTokens();
        });
        row.insertCell().append(revoke);
      }
    }
    await showTokens();

    onSubmit($('token-form'), async (data) => {
      const days = data.get('expiry');
      const expiresAt = days ? new Date(Date.now() + days * 86400e3).toISOString().slice(0, 19) + 'Z' : null;
      const packages = data.get('packages').split(',').map((p) => p.trim()).filter(Boolean);
      const made = await call('POST', 'tokens', {
        label: data.get('label'), scopes: data.getAll('scopes'), packages, expiresAt,
      }, s.csrf);
      $('new-token-value').textContent = made.key;
      $('new-token').hidden = false;
      $('token-form').reset();
      await showTokens();
    }, $('token-error'));

    const packages = $('packages').tBodies[0];
    try {
      const user = await call('GET', 'users/' + encodeURIComponent(s.login.toLowerCase()) + '.json');
      for (const p of user.packages) {
        const row = packages.insertRow();
        const link = document.createElement('a');
        link.href = '/p/' + encodeURIComponent(p.name.toLowerCase());
        link.textContent = p.name;
        row.insertCell().append(link);
        cell(row, p.latestVersion);
        const owners = cell(row, '…');
        call('GET', 'packages/' + encodeURIComponent(p.name.toLowerCase()) + '/owners.json')
          .then((o) => { owners.textContent = o.owners.map((x) => x.login).join(', '); })
          .catch(() => { owners.textContent = '—'; });
        showTrust(p.name, row.insertCell());
      }
    } catch (e) { /* no user page until the next rebuild */ }

    // A package's trust configurations (CI runs that may publish it), each removable.
    async function showTrust(name, td) {
      const path = 'packages/' + encodeURIComponent(name.toLowerCase()) + '/trusted-publishers';
      td.replaceChildren();
      try {
        const { trustedPublishers } = await call('GET', path);
        if (!trustedPublishers.length) td.textContent = 'none';
        for (const t of trustedPublishers) {
          const item = document.createElement('div');
          item.className = 'trust';
          item.textContent = t.repository + ' ' + t.workflow + (t.environment ? ' (' + t.environment + ')' : '') + ' ';
          const remove = document.createElement('button');
          remove.type = 'button';
          remove.textContent = 'Remove';
          remove.setAttribute('aria-label', 'Stop trusting ' + t.repository + ' ' + t.workflow + ' for ' + name);
          remove.addEventListener('click', async () => {
            await call('DELETE', path + '/' + t.id, undefined, s.csrf);
            await showTrust(name, td);
          });
          item.append(remove);
          td.append(item);
        }
      } catch (e) { td.textContent = '—'; }
    }
  }

  async function device() {
    const s = await session();
    const form = $('device-form');
    if (!s) { $('device-signed-out').hidden = false; form.hidden = true; return; }
    const code = new URLSearchParams(location.search).get('code');
    if (code) $('device-code').value = code;
    const result = $('device-result');
    async function answer(approve) {
      const userCode = $('device-code').value.trim().toUpperCase();
      result.textContent = '';
      try {
        await call('POST', 'auth/device/approve', { userCode, approve }, s.csrf);
        result.textContent = approve
          ? 'Approved: the terminal receives its token now.'
          : 'Denied: the terminal gets no token.';
      } catch (e) { result.textContent = e.message; }
    }
    form.addEventListener('submit', (ev) => { ev.preventDefault(); answer(true); });
    $('device-deny').addEventListener('click', () => answer(false));
  }

  const pages = { 'login-form': login, 'signup-form': signup, dash: dashboard, 'device-form': device };
  for (const [id, run] of Object.entries(pages)) {
    if ($(id)) Promise.resolve(run()).catch((e) => { console.error(e); });
  }
})();
