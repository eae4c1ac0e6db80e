//! The client's typed error (after uv's `uv-client` error): what went wrong
//! reading a registry, always with the URL it was reading, and predicates
//! for what callers decide on (`is_offline`, `is_not_found`, …) instead of
//! the text. The CLI wraps it in anyhow like any other error; its text is
//! what the user reads.

use reqwest::StatusCode;

use crate::log::verify::LogError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No answer on any attempt: connection refused or reset, a timeout.
    #[error(
        "fetching {url} failed after {}: {cause}. {GIVE_UP}; now {retries})",
        crate::words::count(*attempts as usize, "attempt")
    )]
    Offline { url: String, cause: String, attempts: u32, retries: u32 },
    /// A 5xx or a 429 on every attempt.
    #[error(
        "fetching {url} failed after {}: it answered {status}. {GIVE_UP}; now {retries})",
        crate::words::count(*attempts as usize, "attempt")
    )]
    Unavailable { url: String, status: StatusCode, attempts: u32, retries: u32 },
    /// 404, 410 or 451 where the file must exist.
    #[error("{url} is not there ({})", status.as_u16())]
    NotFound { url: String, status: StatusCode },
    /// `config.json` is not there: not a registry's URL.
    #[error("{url} is not there: is {registry} a cairn registry? Check --registry or CAIRN_REGISTRY")]
    NotARegistry { url: String, registry: String },
    /// 401 and no token to send.
    #[error("{url} needs a token (401): `cairn login --registry URL --token …` for this registry, or pass --token")]
    TokenNeeded { url: String },
    /// 401 to the token.
    #[error("{url} refused the token (401): it is invalid, expired or revoked")]
    TokenRefused { url: String },
    /// Any other status, with the `errors[0].detail` of a JSON body if it has one.
    #[error("{url} answered {status}{}", detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Status { url: String, status: StatusCode, detail: Option<String> },
    /// A request that could not be made (a bad URL, a redirect loop).
    #[error("fetching {url}: {cause}")]
    Request { url: String, cause: String },
    /// A body that is not what the file must hold, or an answer out of protocol.
    #[error("{what} {url}: {cause}")]
    Invalid { url: String, what: &'static str, cause: String },
    /// A blob or its signature that does not verify.
    #[error("refusing {name} {version} from {url}")]
    Integrity {
        url: String,
        name: String,
        version: String,
        #[source]
        error: Box<super::verify::VerifyError>,
    },
    /// The transparency log's checks failed.
    #[error(
        "checking the log of {url}: the registry's transparency log does not check out: {error}. \
         Nothing was unpacked."
    )]
    Log { url: String, error: Box<LogError> },
}

const GIVE_UP: &str =
    "The registry or the network is failing: try again later (CAIRN_NET_RETRY sets how many retries";

impl Error {
    /// The URL this error is about (for `Log`, the registry's).
    pub fn url(&self) -> &str {
        match self {
            Error::Offline { url, .. }
            | Error::Unavailable { url, .. }
            | Error::NotFound { url, .. }
            | Error::NotARegistry { url, .. }
            | Error::TokenNeeded { url }
            | Error::TokenRefused { url }
            | Error::Status { url, .. }
            | Error::Request { url, .. }
            | Error::Invalid { url, .. }
            | Error::Integrity { url, .. }
            | Error::Log { url, .. } => url,
        }
    }

    /// The registry could not be reached at all.
    pub fn is_offline(&self) -> bool {
        matches!(self, Error::Offline { .. })
    }

    /// The registry answered, but failed (5xx, 429) on every attempt.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }

    /// There is no such file (404, 410, 451), or no registry at that URL.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. } | Error::NotARegistry { .. })
    }

    /// The registry wants a (valid) token.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, Error::TokenNeeded { .. } | Error::TokenRefused { .. })
    }

    /// A digest or signature check refused what was downloaded.
    pub fn is_integrity(&self) -> bool {
        matches!(self, Error::Integrity { .. })
    }

    /// The transparency log did not check out.
    pub fn is_log(&self) -> bool {
        matches!(self, Error::Log { .. })
    }

    /// The HTTP status the registry answered, when that is the error.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Error::Unavailable { status, .. }
            | Error::NotFound { status, .. }
            | Error::Status { status, .. } => Some(*status),
            Error::TokenNeeded { .. } | Error::TokenRefused { .. } => Some(StatusCode::UNAUTHORIZED),
            _ => None,
        }
    }

    /// `Invalid`: `what` of `url` did not parse (`cause`).
    pub fn invalid(url: &str, what: &'static str, cause: impl std::fmt::Display) -> Error {
        Error::Invalid { url: url.to_string(), what, cause: cause.to_string() }
    }
}

/// What a JSON error body says: cargo's `errors[0].detail`, else the
/// write API's `message`.
pub fn detail(body: &[u8]) -> Option<String> {
    let doc: serde_json::Value = serde_json::from_slice(body).ok()?;
    let text = doc.pointer("/errors/0/detail").or_else(|| doc.get("message"))?;
    text.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_keep_the_url_and_predicates_say_what_failed() {
        let e = Error::Offline { url: "http://x/a".into(), cause: "refused".into(), attempts: 4, retries: 3 };
        assert!(e.is_offline() && !e.is_not_found());
        assert!(e.to_string().starts_with("fetching http://x/a failed after 4 attempts: refused. "), "{e}");
        assert!(e.to_string().ends_with("(CAIRN_NET_RETRY sets how many retries; now 3)"), "{e}");
        let e = Error::NotFound { url: "http://x/b".into(), status: StatusCode::GONE };
        assert!(e.is_not_found() && e.status() == Some(StatusCode::GONE));
        assert_eq!(e.to_string(), "http://x/b is not there (410)");
        let body = br#"{"errors":[{"detail":"slow down"}]}"#;
        let e =
            Error::Status { url: "http://x/c".into(), status: StatusCode::IM_A_TEAPOT, detail: detail(body) };
        assert_eq!(e.to_string(), "http://x/c answered 418 I'm a teapot: slow down");
        assert_eq!(e.url(), "http://x/c");
        assert_eq!(detail(b"<html>"), None);
    }
}
