//! Web accounts and device login (SPEC section 12): signup, login and
//! logout with the session cookie, the CSRF rule for writes made with it,
//! and the device flow behind `cairn login --device` (RFC 8628).

use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::{url, ApiError, CookieResult, Request, State};
use crate::config::Signup;
use crate::db::session::Session;
use crate::db::{self, account, device, session, AuditEntry, Caller, ALL_SCOPES};

/// The session cookie's name.
const COOKIE: &str = "cairn_session";

/// The header a write made with the session cookie echoes the CSRF value in.
const CSRF_HEADER: &str = "x-cairn-csrf";

/// Routes that authenticate nobody: whatever credential comes along is
/// ignored, and the request is throttled by address.
pub fn is_anonymous(method: &Method, segs: &[&str]) -> bool {
    method == Method::POST
        && matches!(
            segs,
            ["auth", "signup" | "login" | "device"]
                | ["auth", "device", "token"]
                | ["trusted_publishing", "tokens"]
        )
}

pub async fn route(req: &Request<'_>, segs: &[&str]) -> CookieResult {
    let plain = |(status, doc)| (status, doc, None);
    match (&req.method, segs) {
        (&Method::POST, ["signup"]) => signup(req).await,
        (&Method::POST, ["login"]) => login(req).await,
        (&Method::POST, ["logout"]) => logout(req).await,
        (&Method::GET, ["session"]) => current(req).map(plain),
        (&Method::POST, ["device"]) => device_start(req).await.map(plain),
        (&Method::POST, ["device", "approve"]) => device_approve(req).await.map(plain),
        (&Method::POST, ["device", "token"]) => device_token(req).await.map(plain),
        (m, _) => Err(ApiError::not_found(format!("no API endpoint {m} /api/v1/auth/{}", segs.join("/")))),
    }
}

/// The cookie's secret, from any `Cookie` header.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('=').map(str::to_string))
        .filter(|s| !s.is_empty())
}

/// Authenticates by the `Authorization` header when there is one, else by
/// the session cookie (with the session). `Err` for a presented token that
/// is malformed, unknown, revoked or expired, or a cookie whose session has
/// ended.
pub async fn authenticate(
    state: &State,
    headers: &HeaderMap,
) -> Result<Option<(Caller, Option<Session>)>, ApiError> {
    let authenticated = authenticate_then(state, headers, |_, _| Ok(())).await?;
    Ok(authenticated.map(|(caller, session, ())| (caller, session)))
}

/// [`authenticate`], then `then` on the caller in the same trip to the
/// database (the private read check: one pooled connection per read).
pub async fn authenticate_then<T: Send + 'static>(
    state: &State,
    headers: &HeaderMap,
    then: impl FnOnce(&db::Conn, &Caller) -> anyhow::Result<T> + Send + 'static,
) -> Result<Option<(Caller, Option<Session>, T)>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return authenticate_session(state, headers, then).await;
    };
    let value = value.to_str().map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
    let token = value.strip_prefix("Bearer ").unwrap_or(value).trim();
    // The checksum is checked before any lookup.
    if !db::token::well_formed(token) {
        return Err(ApiError::unauthorized("malformed token: cairn tokens are `cairn_` and 40 characters"));
    }
    let token = token.to_string();
    let found = state
        .db(move |conn| match db::authenticate(conn, &token)? {
            Some(c) => Ok(Some((then(conn, &c)?, c))),
            None => Ok(None),
        })
        .await?;
    match found {
        Some((t, c)) => {
            if let Some(token) = c.token_id {
                state.last_used.lock().unwrap().insert(token, db::now());
            }
            Ok(Some((c, None, t)))
        }
        None => Err(ApiError::unauthorized("invalid, expired or revoked token")),
    }
}

/// Authenticates by the session cookie, if there is one, and notes the
/// use of the session (and of the token it was opened with) for the next
/// flush; the session's only when its recorded use is a minute old.
async fn authenticate_session<T: Send + 'static>(
    state: &State,
    headers: &HeaderMap,
    then: impl FnOnce(&db::Conn, &Caller) -> anyhow::Result<T> + Send + 'static,
) -> Result<Option<(Caller, Option<Session>, T)>, ApiError> {
    let Some(secret) = session_cookie(headers) else {
        return Ok(None);
    };
    let found = state
        .db(move |conn| match db::session::authenticate(conn, &secret)? {
            Some((c, session)) => Ok(Some((then(conn, &c)?, c, session))),
            None => Ok(None),
        })
        .await?;
    let Some((t, c, session)) = found else {
        return Err(ApiError::unauthorized("the session has ended or expired; sign in again"));
    };
    if let Some(token) = c.token_id {
        state.last_used.lock().unwrap().insert(token, db::now());
    }
    let now = db::session::unix_now();
    if now - session.seen >= db::session::SEEN_GRANULARITY {
        state.session_seen.lock().unwrap().insert(session.id, now);
    }
    Ok(Some((c, Some(session), t)))
}

/// A write authenticated by the cookie must echo the session's CSRF value
/// and come from the public URL's origin: another site's page can make the
/// browser send the cookie, but can neither read the value nor forge
/// `Origin`.
pub fn check_csrf(req: &Request) -> Result<(), ApiError> {
    let Some(s) = &req.session else {
        return Ok(());
    };
    if super::is_read(&req.method) {
        return Ok(());
    }
    let sent = req.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    if !sent.is_some_and(|v| same(v.as_bytes(), s.csrf.as_bytes())) {
        return Err(ApiError::forbidden(
            "a write made with the session cookie needs the header X-Cairn-Csrf (its value is in GET /api/v1/auth/session)",
        ));
    }
    let origin = public_origin(req);
    if req.headers.get(header::ORIGIN).is_none_or(|o| o.as_bytes() != origin.as_bytes()) {
        return Err(ApiError::forbidden(format!(
            "a write made with the session cookie must come from {origin}"
        )));
    }
    Ok(())
}

/// Constant-time equality, so the comparison tells nothing of the value.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn public_origin(req: &Request) -> String {
    url::origin(&req.state.reg.config.public_url())
}

/// Signing in from another site's page is refused; a request without
/// `Origin` (curl, the CLI) is not a browser's and passes.
fn check_origin(req: &Request) -> Result<(), ApiError> {
    let origin = public_origin(req);
    match req.headers.get(header::ORIGIN) {
        Some(o) if o.as_bytes() != origin.as_bytes() => {
            Err(ApiError::forbidden(format!("signing in is only allowed from {origin}")))
        }
        _ => Ok(()),
    }
}

/// `Set-Cookie` for a session's secret, or (`None`) one that clears it.
fn cookie(req: &Request, secret: Option<&str>) -> HeaderValue {
    set_cookie(&req.state.reg.config.public_url(), secret)
}

/// `Set-Cookie` for a session's secret on the registry at `public_url`.
pub fn set_cookie(public_url: &str, secret: Option<&str>) -> HeaderValue {
    let secure = if public_url.starts_with("https://") { "; Secure" } else { "" };
    let value = match secret {
        Some(s) => format!("{COOKIE}={s}; HttpOnly; SameSite=Strict; Path=/{secure}"),
        None => format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/{secure}; Max-Age=0"),
    };
    HeaderValue::from_str(&value).expect("a cookie of base64url characters")
}

/// The answer of signup and login: the session's login and CSRF value,
/// and its cookie.
fn signed_in(req: &Request, status: StatusCode, login: &str, secret: &str) -> CookieResult {
    let doc = json!({ "login": login, "csrf": session::csrf(secret) });
    Ok((status, doc, Some(cookie(req, Some(secret)))))
}

/// A change made here, in the audit log with who made it and from where.
fn audit(
    conn: &db::Conn,
    user_id: i64,
    token_id: Option<i64>,
    action: &str,
    target: &str,
    addr: &str,
) -> anyhow::Result<()> {
    let entry =
        AuditEntry { user_id: Some(user_id), token_id, action, target, addr: Some(addr), outcome: "ok" };
    db::audit(conn, &entry).map(|_| ())
}

/// Runs a password hash or check on the blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(ApiError::internal)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAccount {
    login: String,
    email: String,
    password: String,
}

/// Open signup: a user with a password, signed in at once (no token: the
/// account makes its tokens from the session).
async fn signup(req: &Request<'_>) -> CookieResult {
    check_origin(req)?;
    if req.state.reg.config.accounts.signup != Signup::Open {
        return Err(ApiError::forbidden(
            "signup is closed on this registry: an administrator creates accounts",
        ));
    }
    let NewAccount { login, email, password } = req.json()?;
    db::check_login(&login).map_err(ApiError::invalid)?;
    let plausible = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty());
    if !plausible {
        return Err(ApiError::invalid(format!("`{email}` is not an email address")));
    }
    account::check_password(&password).map_err(ApiError::invalid)?;
    let hash = blocking(move || account::hash_password(&password)).await??;
    let (name, addr) = (login.clone(), req.ip.to_string());
    let created = req
        .state
        .db(move |conn| {
            let txn = conn.transaction()?;
            let Some(user) = account::create(&txn, &name, &email, &hash)? else {
                return Ok(None);
            };
            let secret = session::open(&txn, user.id, None)?;
            audit(&txn, user.id, None, "signup", "session", &addr)?;
            txn.commit()?;
            Ok(Some(secret))
        })
        .await?;
    match created {
        Some(secret) => signed_in(req, StatusCode::CREATED, &login, &secret),
        None => Err(ApiError::new(StatusCode::CONFLICT, "conflict", format!("the login `{login}` is taken"))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    login: Option<String>,
    password: Option<String>,
    token: Option<String>,
}

/// Opens a session with a password (every scope of the user) or a token
/// (exactly its rights).
async fn login(req: &Request<'_>) -> CookieResult {
    check_origin(req)?;
    let addr = req.ip.to_string();
    match req.json()? {
        SignIn { login: Some(login), password: Some(password), token: None } => {
            let found = req.state.db(move |conn| account::find_with_password(conn, &login)).await?;
            // An unknown login or one without a password is checked against
            // a decoy, so the time taken does not tell which logins exist.
            let (user, phc) = match found {
                Some((user, Some(phc))) => (Some(user), Some(phc)),
                _ => (None, None),
            };
            let ok = blocking(move || match &phc {
                Some(phc) => account::verify_password(&password, phc),
                None => account::verify_password(&password, account::decoy_hash()),
            })
            .await?;
            let Some(user) = user.filter(|_| ok) else {
                return Err(ApiError::unauthorized("wrong login or password"));
            };
            let id = user.id;
            let secret = req
                .state
                .db(move |conn| {
                    let secret = session::open(conn, id, None)?;
                    audit(conn, id, None, "login", "session", &addr)?;
                    Ok(secret)
                })
                .await?;
            signed_in(req, StatusCode::OK, &user.login, &secret)
        }
        SignIn { login: None, password: None, token: Some(token) } => {
            if !db::token::well_formed(&token) {
                return Err(ApiError::unauthorized(
                    "malformed token: cairn tokens are `cairn_` and 40 characters",
                ));
            }
            let opened = req
                .state
                .db(move |conn| {
                    // An organisation token acts for its organisation,
                    // which has no web session.
                    let Some(caller) = db::authenticate(conn, &token)?.filter(|c| c.org.is_none()) else {
                        return Ok(None);
                    };
                    let secret = session::open(conn, caller.user.id, caller.token_id)?;
                    audit(conn, caller.user.id, caller.token_id, "login", "session", &addr)?;
                    Ok(Some((caller.user.login, secret)))
                })
                .await?;
            match opened {
                Some((login, secret)) => signed_in(req, StatusCode::OK, &login, &secret),
                None => Err(ApiError::unauthorized(
                    "invalid, expired or revoked token (an organisation token opens no web session)",
                )),
            }
        }
        _ => Err(ApiError::invalid(r#"send {"login","password"} or {"token"}"#)),
    }
}

/// The request's session, or 401 (a bearer token has none).
fn need_session<'r>(req: &'r Request) -> Result<&'r session::Session, ApiError> {
    req.caller()?;
    req.session
        .as_ref()
        .ok_or_else(|| ApiError::unauthorized("this needs a session cookie (POST /api/v1/auth/login)"))
}

async fn logout(req: &Request<'_>) -> CookieResult {
    let id = need_session(req)?.id;
    let caller = req.caller()?;
    let (user, token, addr) = (caller.user.id, caller.token_id, req.ip.to_string());
    req.state
        .db(move |conn| {
            session::end(conn, id)?;
            audit(conn, user, token, "logout", "session", &addr)
        })
        .await?;
    Ok((StatusCode::OK, json!({ "loggedOut": true }), Some(cookie(req, None))))
}

/// What a page reload needs: who is signed in, the CSRF value, the scopes.
fn current(req: &Request) -> super::ApiResult {
    let s = need_session(req)?;
    let c = req.caller()?;
    Ok((StatusCode::OK, json!({ "login": c.user.login, "csrf": s.csrf, "scopes": c.scopes })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DeviceStart {
    #[serde(default)]
    scopes: Vec<String>,
}

/// Starts a device login; no scopes asked for means every scope.
async fn device_start(req: &Request<'_>) -> super::ApiResult {
    let asked: DeviceStart = if req.body.is_empty() { DeviceStart::default() } else { req.json()? };
    let mut scopes = Vec::new();
    for scope in &asked.scopes {
        if !ALL_SCOPES.contains(&scope.as_str()) {
            return Err(ApiError::invalid(format!(
                "unknown scope `{scope}`; scopes are {}",
                ALL_SCOPES.join(", ")
            )));
        }
    }
    for scope in ALL_SCOPES {
        if asked.scopes.is_empty() || asked.scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_string());
        }
    }
    let started = req.state.db(move |conn| device::start(conn, &scopes)).await?;
    let expires = chrono::DateTime::from_timestamp(started.expires, 0).expect("a time in range");
    Ok((
        StatusCode::OK,
        json!({
            "deviceCode": started.device_code,
            "userCode": started.user_code,
            "verificationUrl": format!("{}/device", req.state.reg.config.public_url()),
            "expiresAt": crate::index::line::pubtime(expires),
            "interval": device::INTERVAL_SECS,
        }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DeviceAnswer {
    user_code: String,
    approve: bool,
}

/// Approves or denies a user code, for the caller's account and within
/// its rights.
async fn device_approve(req: &Request<'_>) -> super::ApiResult {
    let caller = req.caller()?.clone();
    if !caller.has_scope("tokens") {
        return Err(ApiError::forbidden("answering a device login needs the `tokens` scope"));
    }
    let DeviceAnswer { user_code, approve } = req.json()?;
    let (code, addr) = (user_code.clone(), req.ip.to_string());
    let answer = req
        .state
        .db(move |conn| {
            let answer = device::answer(conn, &code, &caller, approve)?;
            if let device::Answer::Done(scopes) = &answer {
                let action = if approve { "device-approve" } else { "device-deny" };
                let target = format!("device login for {}", scopes.join(","));
                audit(conn, caller.user.id, caller.token_id, action, &target, &addr)?;
            }
            Ok(answer)
        })
        .await?;
    match answer {
        device::Answer::Done(scopes) => {
            Ok((StatusCode::OK, json!({ "approved": approve, "scopes": scopes })))
        }
        device::Answer::Unknown => Err(ApiError::not_found(format!(
            "no device login has the code `{user_code}`: check the code `cairn login --device` shows"
        ))),
        device::Answer::Expired => Err(ApiError::invalid(format!(
            "the code `{user_code}` has expired: run `cairn login --device` again"
        ))),
        device::Answer::Answered => Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("the code `{user_code}` was approved or denied already"),
        )),
        device::Answer::Refused(why) => Err(ApiError::forbidden(why)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DevicePoll {
    device_code: String,
}

/// The CLI's poll: the token once approved (shown this once), else why not
/// yet, in RFC 8628's terms.
async fn device_token(req: &Request<'_>) -> super::ApiResult {
    let DevicePoll { device_code } = req.json()?;
    let poll = req.state.db(move |conn| device::poll(conn, &device_code)).await?;
    let refuse =
        |code: &'static str, message: &str| Err(ApiError::new(StatusCode::BAD_REQUEST, code, message));
    match poll {
        device::Poll::Token(token) => Ok((StatusCode::OK, json!({ "token": token }))),
        device::Poll::Pending => refuse("authorization-pending", "not approved yet"),
        device::Poll::SlowDown => {
            refuse("slow-down", "polled faster than the interval: wait 5 seconds longer between polls")
        }
        device::Poll::Expired => refuse("expired-token", "the device code has expired: start again"),
        device::Poll::Denied => refuse("access-denied", "the device login was denied"),
        device::Poll::Unknown => Err(ApiError::invalid("unknown device code")),
        device::Poll::Delivered => {
            Err(ApiError::invalid("the token of this device code was delivered already: start again"))
        }
    }
}
