//! What every request of the public listener leaves behind (SPEC section
//! 20): its request id (sent back as `X-Request-Id`; a trusted proxy's
//! own is kept, so one id follows the request through both logs), its
//! route class, and when it is answered one log line (target
//! `cairn::request`: JSON with `[log] format = "json"`) and the metrics.
//! The line names the path without its query (a sign-in's code travels
//! there) and the acting login, never a credential.

use http::{HeaderMap, HeaderValue, Method};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use crate::metrics::{self, RouteClass};

/// The login a request acted as, set by the API's authentication stage
/// (a request extension: the answer is logged outside the filters).
#[derive(Clone, Default)]
pub struct Acting(Arc<OnceLock<String>>);

impl Acting {
    pub fn set(&self, login: &str) {
        let _ = self.0.set(login.to_string());
    }
}

/// One request on its way: when it came, its id, its class.
pub struct Observed {
    started: Instant,
    pub id: HeaderValue,
    class: RouteClass,
    method: Method,
    pub acting: Acting,
}

impl Observed {
    /// `trusted`: the connection is from a trusted proxy, whose id is kept.
    pub fn start(method: &Method, path: &str, headers: &HeaderMap, trusted: bool) -> Observed {
        let id = match headers.get("x-request-id") {
            Some(v) if trusted && acceptable(v.as_bytes()) => v.clone(),
            _ => new_id(),
        };
        Observed {
            started: Instant::now(),
            id,
            class: class_of(method, path),
            method: method.clone(),
            acting: Acting::default(),
        }
    }

    /// The answer's status: counted, timed and logged.
    pub fn finish(self, path: &str, status: u16) {
        let took = self.started.elapsed();
        let path = loggable(path);
        let path = path.as_ref();
        metrics::get().request(self.class, status, took);
        if tracing::enabled!(target: "cairn::request", tracing::Level::INFO) {
            tracing::info!(
                target: "cairn::request",
                request_id = self.id.to_str().unwrap_or(""),
                class = self.class.as_str(),
                method = self.method.as_str(),
                path,
                status,
                duration_ms = took.as_secs_f64() * 1000.0,
                login = self.acting.0.get().map(String::as_str),
                "request"
            );
        }
    }
}

/// The path as logged: without the secret a path may carry (an
/// invitation's token, the device code of npm's done URL).
fn loggable(path: &str) -> std::borrow::Cow<'_, str> {
    let mut segs: Vec<&str> = path.split('/').collect();
    let secret = match super::npm::login::code_of(path) {
        Some(_) => Some(segs.len() - 1),
        None => segs.iter().position(|s| *s == "invitations").map(|i| i + 1).filter(|&i| i < segs.len()),
    };
    match secret {
        Some(i) => {
            segs[i] = "…";
            std::borrow::Cow::Owned(segs.join("/"))
        }
        None => std::borrow::Cow::Borrowed(path),
    }
}

/// A proxy's id: short, of visible ASCII without quotes or separators.
fn acceptable(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= 64 && id.iter().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
}

/// 16 hex digits: a random start per process, then a counter (unique
/// within the process, unpredictable across restarts, one atomic add).
fn new_id() -> HeaderValue {
    static NEXT: OnceLock<AtomicU64> = OnceLock::new();
    let n = NEXT.get_or_init(|| AtomicU64::new(rand::random::<u64>())).fetch_add(1, Ordering::Relaxed);
    HeaderValue::from_str(&format!("{n:016x}")).expect("hex is a header value")
}

/// The route class of a request, from its method and path alone.
pub fn class_of(method: &Method, path: &str) -> RouteClass {
    if let Some((org, rest)) = crate::npm::door_of(path) {
        return match super::npm::static_key(org, rest) {
            Some(_) if super::is_read(method) => RouteClass::Static,
            _ => RouteClass::Npm,
        };
    }
    let below = super::private::api_of(path).map_or(path, |(_, rest)| rest);
    if super::is_static_read(method, below) {
        return RouteClass::Static;
    }
    let Some(api) = below.strip_prefix("/api/v1/") else {
        return RouteClass::Other;
    };
    let segs: Vec<&str> = api.split('/').collect();
    match (method, segs.as_slice()) {
        (&Method::GET, ["events"]) => RouteClass::Events,
        (&Method::PUT, ["packages", _, _] | ["crates", "new"]) => RouteClass::Publish,
        (_, ["crates", ..]) => RouteClass::Cargo,
        (_, ["auth", ..]) => RouteClass::Auth,
        (m, _) if super::is_read(m) => RouteClass::ApiRead,
        _ => RouteClass::ApiWrite,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_a_fixed_set_never_a_path() {
        let c = |m: Method, p: &str| class_of(&m, p).as_str();
        assert_eq!(c(Method::GET, "/index/ab/cd/abcd"), "static");
        assert_eq!(c(Method::GET, "/api/v1/packages/foo.json"), "static");
        assert_eq!(c(Method::PUT, "/api/v1/packages/foo/1.0.0"), "publish");
        assert_eq!(c(Method::PUT, "/api/v1/crates/new"), "publish");
        assert_eq!(c(Method::DELETE, "/api/v1/crates/foo/1.0.0/yank"), "cargo");
        assert_eq!(c(Method::POST, "/api/v1/auth/login"), "auth");
        assert_eq!(c(Method::GET, "/api/v1/whoami"), "api-read");
        assert_eq!(c(Method::GET, "/npm/left-pad"), "static");
        assert_eq!(c(Method::GET, "/orgs/acme/npm/@acme%2fw"), "static");
        assert_eq!(c(Method::GET, "/npm/-/whoami"), "npm");
        assert_eq!(c(Method::PUT, "/npm/left-pad"), "npm");
        assert_eq!(c(Method::POST, "/api/v1/tokens"), "api-write");
        assert_eq!(c(Method::GET, "/api/v1/events"), "events");
        assert_eq!(c(Method::POST, "/elsewhere"), "other");
    }

    #[test]
    fn a_secret_in_a_path_is_never_logged() {
        assert_eq!(loggable("/invitations/s3cret"), "/invitations/…");
        assert_eq!(loggable("/api/v1/invitations/s3cret/accept"), "/api/v1/invitations/…/accept");
        assert_eq!(loggable("/npm/-/v1/login/done/s3cret"), "/npm/-/v1/login/done/…");
        assert_eq!(loggable("/invitations/"), "/invitations/…");
        assert_eq!(loggable("/api/v1/packages/x"), "/api/v1/packages/x");
    }

    #[test]
    fn a_proxy_id_is_kept_only_when_trusted_and_well_formed() {
        let mut h = HeaderMap::new();
        h.insert("x-request-id", HeaderValue::from_static("proxy-1234"));
        assert_eq!(Observed::start(&Method::GET, "/", &h, true).id, "proxy-1234");
        assert_ne!(Observed::start(&Method::GET, "/", &h, false).id, "proxy-1234");
        h.insert("x-request-id", HeaderValue::from_static("a b"));
        assert_eq!(Observed::start(&Method::GET, "/", &h, true).id.len(), 16);
    }
}
