// cairn's account pages: sign-in, sign-up, the dashboard, the device
// approval and an invitation's answer, over the write API (SPEC section
// 12). The session is the HttpOnly cookie `cairn_session`; every write
// also sends the session's CSRF value (from GET /api/v1/auth/session) as
// X-Cairn-Csrf, and the browser adds the Origin the server checks. Data is put in the page as
// text, never as HTML.
(function () {
  'use strict';
  const $ = (id) => document.getElementById(id);

  // The API of the page's registry: the public one, or a private
  // organisation's below its prefix (a page's data-api says which).
  function call(method, path, body, csrf) { return callAt('/api/v1/', method, path, body, csrf); }

  async function callAt(api, method, path, body, csrf) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (csrf) headers['X-Cairn-Csrf'] = csrf;
    const resp = await fetch(api + path, {
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
    // and whether the owner's mails come (the opt-out of SPEC section 19).
    call('GET', 'whoami').then(({ usage, notify }) => {
      const mb = (n) => (n / 1e6).toFixed(1) + ' MB';
      $('dash-usage').textContent = 'Storage used: ' + mb(usage.bytes) +
        (usage.limit === null ? '' : ' of ' + mb(usage.limit));
      const box = $('notify');
      box.checked = notify;
      box.disabled = false;
      box.addEventListener('change', async () => {
        $('notify-result').textContent = '';
        try {
          const done = await call('PATCH', 'me', { notify: box.checked }, s.csrf);
          $('notify-result').textContent = done.notify ? 'Mails on.' : 'Mails off.';
        } catch (e) { box.checked = !box.checked; $('notify-result').textContent = e.message; }
      });
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

    compose(s);

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

  // An invitation's page (/invitations/{token}): what it offers, then
  // accept or decline for the invitee, signed in with the invited address.
  async function invitation() {
    const token = location.pathname.split('/').filter(Boolean)[1] || '';
    const path = 'invitations/' + encodeURIComponent(token);
    let i;
    try { i = await call('GET', path); } catch (e) { $('invite-error').textContent = e.message; return; }
    $('invite-text').textContent = i.invitedBy + ' invites ' + i.email + ' to join ' + i.name +
      ' (org:' + i.org + ') as ' + i.role + '. The invitation expires at ' + i.expiresAt + '.';
    $('invite').hidden = false;
    const s = await session();
    if (!s) {
      $('invite-login').href = '/login?next=' + encodeURIComponent(location.pathname);
      $('invite-signed-out').hidden = false;
      return;
    }
    $('invite-actions').hidden = false;
    async function answer(verb) {
      $('invite-result').textContent = '';
      try {
        await call('POST', path + '/' + verb, {}, s.csrf);
        $('invite-actions').hidden = true;
        $('invite-result').textContent = verb === 'accept'
          ? 'Accepted: you are a member of org:' + i.org + ' as ' + i.role + '.'
          : 'Declined.';
      } catch (e) { $('invite-result').textContent = e.message; }
    }
    $('invite-accept').addEventListener('click', () => answer('accept'));
    $('invite-decline').addEventListener('click', () => answer('decline'));
  }

  function pkgPath(name) { return 'packages/' + encodeURIComponent(name.toLowerCase()); }

  // A proposal's page, in the registry whose API is `api`.
  function proposalLink(api, name, p) {
    const a = document.createElement('a');
    a.href = api.replace(/\/api\/v1\/$/, '') + '/p/' + encodeURIComponent(name.toLowerCase()) + '/proposals/' + p.id;
    a.textContent = '#' + p.id + ' ' + p.title;
    return a;
  }

  // The package page: its open proposals (the proposals page lists them without a script).
  async function packageProposals() {
    const list = $('package-proposals');
    const name = list.dataset.package;
    const { proposals } = await callAt(list.dataset.api, 'GET', pkgPath(name) + '/proposals?status=open');
    for (const p of proposals) {
      const li = document.createElement('li');
      li.append(proposalLink(list.dataset.api, name, p), ' · ' + p.path + ' by ' + p.author);
      list.append(li);
    }
  }

  // The proposals page's form: a signed-in user proposes a file.
  async function propose() {
    const form = $('propose-form');
    const s = await session();
    if (!s) { $('propose-signed-out').hidden = false; form.hidden = true; return; }
    const name = form.dataset.package;
    onSubmit(form, async (data) => {
      const body = {};
      for (const k of ['title', 'intent', 'baseVersion', 'path', 'content']) body[k] = data.get(k);
      const made = await callAt(form.dataset.api, 'POST', pkgPath(name) + '/proposals', body, s.csrf);
      const done = $('propose-done');
      done.replaceChildren('Proposal sent: ', proposalLink(form.dataset.api, name, made), '.');
      form.reset();
    }, $('propose-error'));
  }

  // A proposal's page: its author withdraws it, an owner rejects it (the
  // server decides who may; the page is written again, so it reloads).
  async function proposalActions() {
    const box = $('proposal-actions');
    const s = await session();
    if (!s) return;
    box.hidden = false;
    const { api, package: name, id, author } = box.dataset;
    $('proposal-withdraw').hidden = s.login.toLowerCase() !== author.toLowerCase();
    const close = async (status) => {
      try {
        await callAt(api, 'PATCH', pkgPath(name) + '/proposals/' + id, { status }, s.csrf);
        location.reload();
      } catch (e) { $('proposal-error').textContent = e.message; }
    };
    $('proposal-withdraw').addEventListener('click', () => close('withdrawn'));
    $('proposal-reject').addEventListener('click', () => close('rejected'));
  }

  // The dashboard's compose view: an owner picks open proposals, composes
  // them (conflicts shown with their hunks) and publishes the candidate.
  function compose(s) {
    const form = $('compose-form');
    const chosen = $('compose-proposals');
    let name = null;

    function hunkText(h) {
      return '<<<<<<< candidate\n' + h.ours + '||||||| base\n' + h.base + '=======\n' + h.theirs + '>>>>>>> proposal\n';
    }

    function show(candidate) {
      $('compose-base').textContent = name + ' ' + candidate.baseVersion;
      const conflicts = $('compose-conflicts');
      conflicts.replaceChildren();
      for (const c of candidate.conflicts) {
        const li = document.createElement('li');
        li.className = 'conflict';
        const pre = document.createElement('pre');
        pre.textContent = c.hunks.map(hunkText).join('');
        li.append('Proposal #' + c.proposalId + ' conflicts in ' + c.path + ':', pre);
        conflicts.append(li);
      }
      if (!candidate.conflicts.length) conflicts.append(Object.assign(document.createElement('li'), { textContent: 'None.' }));
      const files = $('compose-files');
      files.replaceChildren();
      for (const [path, content] of Object.entries(candidate.files)) {
        const h = document.createElement('h4');
        h.textContent = path;
        const pre = document.createElement('pre');
        pre.textContent = content;
        files.append(h, pre);
      }
      $('compose-result').hidden = false;
      $('publish-form').hidden = candidate.conflicts.length > 0 || candidate.proposalIds.length === 0;
    }

    async function load(pkg) {
      name = pkg;
      const [candidate, { proposals }] = await Promise.all([
        call('GET', pkgPath(name) + '/candidate'),
        call('GET', pkgPath(name) + '/proposals?status=open'),
      ]);
      chosen.replaceChildren();
      for (const p of proposals.slice().reverse()) {
        const label = document.createElement('label');
        const box = document.createElement('input');
        box.type = 'checkbox';
        box.value = p.id;
        box.checked = candidate.proposalIds.includes(p.id);
        label.append(box, ' ', proposalLink('/api/v1/', name, p), ' by ' + p.author + ' (' + p.path + ')');
        chosen.append(label, document.createElement('br'));
      }
      if (!proposals.length) chosen.textContent = 'No open proposals.';
      $('compose-pick').hidden = false;
      show(candidate);
    }

    onSubmit(form, async (data) => load(data.get('package').trim()), $('compose-error'));
    onSubmit($('compose-pick'), async () => {
      const proposalIds = [...chosen.querySelectorAll('input:checked')].map((b) => Number(b.value));
      show(await call('PUT', pkgPath(name) + '/candidate', { proposalIds }, s.csrf));
    }, $('compose-error'));
    onSubmit($('publish-form'), async (data) => {
      const made = await call('POST', pkgPath(name) + '/candidate/publish',
        { bump: data.get('bump'), changelog: data.get('changelog') }, s.csrf);
      const a = document.createElement('a');
      a.href = '/p/' + encodeURIComponent(name.toLowerCase()) + '/' + encodeURIComponent(made.version);
      a.textContent = made.name + ' ' + made.version;
      $('publish-done').replaceChildren('Published ', a, '.');
      await load(name);
    }, $('compose-error'));
    const asked = new URLSearchParams(location.search).get('compose');
    if (asked) { $('compose-package').value = asked; load(asked).catch((e) => { $('compose-error').textContent = e.message; }); }
  }

  const pages = {
    'login-form': login, 'signup-form': signup, dash: dashboard, 'device-form': device, invite: invitation,
    'package-proposals': packageProposals, 'propose-form': propose, 'proposal-actions': proposalActions,
  };
  for (const [id, run] of Object.entries(pages)) {
    if ($(id)) Promise.resolve(run()).catch((e) => { console.error(e); });
  }
})();
