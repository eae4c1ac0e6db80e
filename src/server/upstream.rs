//! Reads that an upstream fills (SPEC section 16). A cached index file or
//! blob is a static file like any other; only a miss, or an index file
//! whose `refresh` ran out, reaches this code before the read is served:
//! the upstream's file is fetched (conditionally, with its validators),
//! the lines it may serve committed through the writer (`cache {name}`),
//! and a blob fetched, checked against its line, signed naming the
//! upstream and stored content-addressed. One flight per file.

use http::{Response, StatusCode};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::body::{full, Body};
use super::fetched::Fetch;
use super::{render_error, ApiError, State};
use crate::db::upstream::{self as rows, Cached};
use crate::layout::{Key, Missable};
use crate::publish::WriteError;
use crate::publish::{Preparing, Writer};
use crate::registry::Registry;
use crate::upstream::{Answer, Failure, Source, Upstreams};

/// When each name's index file needs no look before it is served again:
/// a cached one's until its `refresh` runs out, a local one's for a while.
#[derive(Default)]
pub struct Fresh(Mutex<HashMap<String, Instant>>);

/// How long a name found local (or no upstream's) is not looked at again.
const LOCAL_FOR: Duration = Duration::from_secs(30);

/// The registry a read is for (the public one, or a private
/// organisation's), with its writer.
struct Target<'a> {
    state: &'a State,
    reg: &'a Arc<Registry>,
    writer: &'a Writer,
}

impl Target<'_> {
    fn is_fresh(&self, name: &str) -> bool {
        let key = self.reg.space.key(name);
        self.state.upstream_fresh.0.lock().unwrap().get(&key).is_some_and(|until| *until > Instant::now())
    }

    fn fresh_for(&self, name: &str, for_: Duration) {
        let key = self.reg.space.key(name);
        self.state.upstream_fresh.0.lock().unwrap().insert(key, Instant::now() + for_);
    }
}

/// Around a static read of `key`: before it (`missed` false), brings an
/// index file an upstream serves level with it (a miss, or a cached file
/// due for revalidation); after the static root had no file (`missed`),
/// fetches a blob a cached line names. `Some`: the answer to give instead
/// of the file (502 when an upstream failed for a file never cached).
pub async fn before_read(state: &State, up: &Upstreams, key: &Key, missed: bool) -> Option<Response<Body>> {
    let (org, missable) = (key.org(), key.missable()?);
    if matches!(missable, Missable::Blob(_)) != missed || !up.serves(org) {
        return None;
    }
    // A private organisation's read (its gate passed) is its registry's.
    let hosted = match org {
        Some(slug) => match super::private::hosted(state, slug).await {
            Ok(hosted) => Some(hosted),
            Err(e) => return Some(render_error(&e, None, super::Shape::Api).map(full)),
        },
        None => None,
    };
    let target = match &hosted {
        Some(h) => Target { state, reg: &h.reg, writer: &h.writer },
        None => Target { state, reg: &state.reg, writer: &state.writer },
    };
    let top = target.reg.root.layout().top().to_string();
    let flight = |what: &str| format!("{top}{what}");
    let done = match missable {
        Missable::IndexFile(name) => {
            if target.is_fresh(&name) {
                return None;
            }
            let prepared = Some(target.writer.preparing());
            up.single(&flight(&format!("index {name}")), index_file(&target, up, &name, prepared)).await
        }
        Missable::Blob(sha256) => {
            if target.reg.store.exists(&sha256) {
                return None;
            }
            up.single(&flight(&format!("blob {sha256}")), blob(&target, up, &sha256)).await
        }
    };
    match done {
        Ok(()) => None,
        Err(e) => Some(render_error(&e, None, super::Shape::Api).map(full)),
    }
}

/// Whether the request asks for a stored answer only (RFC 9111's
/// `Cache-Control: only-if-cached`): a mirror copying what this registry
/// caches, not what its upstream has.
pub fn only_if_cached(headers: &http::HeaderMap) -> bool {
    let values = headers.get_all(http::header::CACHE_CONTROL).into_iter();
    values
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|d| d.trim().eq_ignore_ascii_case("only-if-cached")))
}

/// The answer to an `only-if-cached` read of a blob a cached line names
/// but this registry has not fetched from its upstream: 504, as RFC 9111
/// says (any other missing file stays a 404).
pub async fn not_cached(state: &State, key: &Key) -> Option<Response<Body>> {
    let Some(Missable::Blob(sha256)) = key.missable() else { return None };
    let space = key.org().map_or(crate::db::Space::Public, |slug| crate::db::Space::Org(slug.to_string()));
    let sha = sha256.clone();
    let named = state.db(move |conn| Ok(!rows::blob_sources(conn, &space, &sha)?.is_empty())).await;
    if !named.unwrap_or(false) {
        return None;
    }
    let e =
        ApiError::new(StatusCode::GATEWAY_TIMEOUT, "not-cached", format!("blob {sha256} is not cached here"));
    Some(render_error(&e, None, super::Shape::Api).map(full))
}

/// Where a first miss sends the names its dependencies will miss next,
/// each counted by the writer as being prepared from then on.
pub type Ahead = tokio::sync::mpsc::UnboundedSender<(String, Preparing)>;

pub fn ahead_channel() -> (Ahead, tokio::sync::mpsc::UnboundedReceiver<(String, Preparing)>) {
    tokio::sync::mpsc::unbounded_channel()
}

/// How many index files are brought ahead at once.
const AHEAD_AT_ONCE: usize = 16;

/// Brings the public registry's index files of the names a first miss
/// sent ([`crate::upstream::ahead`]) in the background, each through the
/// same single flight as a reader's miss (a reader asking meanwhile waits
/// for it), so a resolution's next level is being cached while cargo reads
/// this one, and the writer commits it in few groups.
pub async fn fetch_ahead(
    state: Arc<State>,
    mut names: tokio::sync::mpsc::UnboundedReceiver<(String, Preparing)>,
) {
    let Some(up) = state.upstreams.clone() else { return };
    let slots = Arc::new(tokio::sync::Semaphore::new(AHEAD_AT_ONCE));
    while let Some((name, prepared)) = names.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let (state, up) = (state.clone(), up.clone());
        tokio::spawn(async move {
            let target = Target { state: &state, reg: &state.reg, writer: &state.writer };
            if !target.is_fresh(&name) {
                let flight = format!("index {name}");
                let _ = up.single(&flight, index_file(&target, up.as_ref(), &name, Some(prepared))).await;
            }
            drop(slot);
        });
    }
}

/// How many cached packages one sweep looks at.
const SWEEP_BATCH: usize = 64;

/// Revalidates the public registry's cached index files whose `refresh`
/// ran out, in the background, a batch per tick: reads served by nginx or
/// a CDN from the static root never reach [`before_read`], so without this
/// their copy would never follow the upstream.
pub async fn sweep(state: Arc<State>) {
    let Some(up) = state.upstreams.clone() else { return };
    let tick = up.sources().iter().map(|s| s.config.refresh).min().unwrap_or(60).max(1);
    let shortest_ms = tick as i64 * 1000;
    loop {
        tokio::time::sleep(Duration::from_secs(tick)).await;
        let space = state.reg.space.clone();
        let before = chrono::Utc::now().timestamp_millis() - shortest_ms;
        let due = state.db(move |conn| rows::due(conn, &space, before, SWEEP_BATCH)).await;
        let target = Target { state: &state, reg: &state.reg, writer: &state.writer };
        for name in due.unwrap_or_default() {
            if !target.is_fresh(&name) {
                let flight = format!("index {}", name.to_ascii_lowercase());
                // Not counted as being prepared: a write group does not
                // wait for a revalidation, which seldom changes anything.
                let _ = up.single(&flight, index_file(&target, up.as_ref(), &name, None)).await;
            }
        }
    }
}

/// Brings the index's file for `name` level with its upstream, if an
/// upstream serves it: what the upstream offers now, or (if it fails) the
/// cached file as it is. An error only for a name never cached. Until its
/// caching is queued (or it needs none), the writer's next group waits a
/// little for it (when `prepared`), and for the dependencies it sends ahead.
async fn index_file(
    t: &Target<'_>,
    up: &Upstreams,
    name: &str,
    prepared: Option<Preparing>,
) -> Result<(), ApiError> {
    let (state, reg) = (t.state, t.reg.clone());
    let org = reg.space.org();
    let refresh_ms = |src: &Source| src.config.refresh as i64 * 1000;
    let (owner, row, cached) = {
        let (name, reg) = (name.to_string(), reg.clone());
        state
            .db(move |conn| {
                let local = crate::db::find_package(conn, &reg.space, &name)?.is_some()
                    || rows::claimed(conn, &reg.space, &name)?;
                let row = rows::cached(conn, &reg.space, &name)?;
                let cached = reg.index.read_file(&crate::index::package_path(&name))?.is_some();
                Ok((local, row, cached))
            })
            .await?
    };
    // A local name is never served from an upstream.
    if owner {
        t.fresh_for(name, LOCAL_FOR);
        return Ok(());
    }
    let src = match &row {
        Some(row) => up.named(&row.upstream).or_else(|| up.for_name(name, org)),
        None => up.for_name(name, org),
    };
    let Some(src) = src else {
        t.fresh_for(name, LOCAL_FOR);
        return Ok(());
    };
    let now_ms = chrono::Utc::now().timestamp_millis();
    // Another node (or this one before a restart) looked lately.
    if let Some(row) = row.as_ref().filter(|r| cached && r.checked_ms + refresh_ms(src) > now_ms) {
        let left = (row.checked_ms + refresh_ms(src) - now_ms) as u64;
        t.fresh_for(name, Duration::from_millis(left));
        return Ok(());
    }
    if !cached && up.known_absent(name) {
        return Ok(());
    }
    let (etag, modified) = match (&row, cached) {
        (Some(r), true) => (r.etag.as_deref(), r.last_modified.as_deref()),
        _ => (None, None),
    };
    let checked = |etag: Option<String>, last_modified: Option<String>| Cached {
        upstream: src.config.name.clone(),
        etag,
        last_modified,
        checked_ms: chrono::Utc::now().timestamp_millis(),
    };
    let refresh = Duration::from_secs(src.config.refresh);
    let answer = up.index_file(src, name, etag, modified).await;
    // A cached file the upstream did not replace: looked at again after
    // `refresh` (so the sweep moves on to others meanwhile).
    let kept = match (&row, cached) {
        (Some(r), true) => Some(checked(r.etag.clone(), r.last_modified.clone())),
        _ => None,
    };
    let (bytes, row) = match answer {
        Ok(Answer::File { bytes, etag, last_modified }) => (bytes, checked(etag, last_modified)),
        Ok(Answer::NotModified) if kept.is_some() => {
            record(t, name, kept.expect("checked")).await?;
            t.fresh_for(name, refresh);
            return Ok(());
        }
        // A name the upstream lacks: 404 (remembered); a cached one stays.
        Ok(Answer::Absent) => {
            if let Some(kept) = kept {
                record(t, name, kept).await?;
            }
            return Ok(());
        }
        Ok(Answer::NotModified) => {
            let why = format!("it answered 304 for {name} to a request that was not conditional");
            return stale_or(
                t,
                name,
                cached,
                src,
                Failure::Unavailable { upstream: src.config.name.clone(), why },
            );
        }
        Err(e) => {
            if let Some(kept) = kept {
                record(t, name, kept).await?;
            }
            return stale_or(t, name, cached, src, e);
        }
    };
    let lines = match crate::upstream::parse(name, &bytes) {
        Ok(lines) => lines,
        Err(e) => {
            let why = format!("its index file for {name} is no index file: {e:#}");
            let e = Failure::Unavailable { upstream: src.config.name.clone(), why };
            return stale_or(t, name, cached, src, e);
        }
    };
    // A cairn upstream's lines are checked against its log first.
    let raw: Vec<&[u8]> = lines.iter().map(|(raw, _)| *raw).collect();
    if let Err(e) = up.check_lines(src, &raw).await {
        return stale_or(t, name, cached, src, e);
    }
    // The cooldown counts from `pubtime`, else from cairn's first sighting.
    let now = chrono::Utc::now().timestamp();
    let versions: Vec<(String, String)> =
        lines.iter().map(|(_, l)| (l.vers.clone(), l.cksum.clone())).collect();
    // Without a cooldown the writer records the versions with the commit.
    let seen = match src.min_age() {
        0 => Default::default(),
        _ => {
            let (name, upstream, space) = (name.to_string(), src.config.name.clone(), reg.space.clone());
            state
                .db(move |conn| {
                    let v: Vec<(&str, &str)> =
                        versions.iter().map(|(v, c)| (v.as_str(), c.as_str())).collect();
                    rows::first_seen(conn, &space, &name, &upstream, &v, now)
                })
                .await?
        }
    };
    let file = crate::upstream::offered(&lines, src.min_age(), &seen, now);
    if file.is_empty() {
        // Every version is in its cooldown: nothing to serve yet.
        t.fresh_for(name, refresh);
        return Ok(());
    }
    // A first caching in the public registry: its dependencies next, sent
    // before it commits so that their cachings can join its group.
    if !cached && src.config.prefetch && reg.space.org().is_none() {
        for next in crate::upstream::ahead(&lines) {
            if !t.is_fresh(&next) {
                let _ = state.upstream_ahead.send((next, t.writer.preparing()));
            }
        }
    }
    match t.writer.cache(prepared, name, file, row).await {
        Ok(_) => {}
        // Published or claimed meanwhile: local from now on.
        Err(WriteError::Conflict(_)) => {
            t.fresh_for(name, LOCAL_FOR);
            return Ok(());
        }
        Err(e) if cached => {
            tracing::warn!(error = %e, name, "caching an upstream's new lines failed; serving the cached ones")
        }
        Err(e) => return Err(e.into()),
    }
    t.fresh_for(name, refresh);
    Ok(())
}

/// An upstream failed: a cached file is served as it is (and looked at
/// again after `refresh`); a name never cached gets 502.
fn stale_or(t: &Target, name: &str, cached: bool, src: &Source, e: Failure) -> Result<(), ApiError> {
    tracing::warn!(error = %e, name, cached, "an upstream failed");
    if cached {
        t.fresh_for(name, Duration::from_secs(src.config.refresh));
        return Ok(());
    }
    Err(failure(e))
}

async fn record(t: &Target<'_>, name: &str, row: Cached) -> Result<(), ApiError> {
    let (name, space) = (name.to_string(), t.reg.space.clone());
    t.state.db(move |conn| rows::checked(conn, &space, &name, &row)).await
}

/// An upstream's failure as the reader sees it.
pub fn failure(e: Failure) -> ApiError {
    let code = match e {
        Failure::Unavailable { .. } => "upstream-unavailable",
        Failure::Mismatch { .. } | Failure::Unverified { .. } => "upstream-mismatch",
    };
    ApiError::new(StatusCode::BAD_GATEWAY, code, e.to_string())
}

/// Fetches the blob `sha256` from the upstream whose committed line names
/// it, checks it, signs it naming the upstream, and stores it.
async fn blob(t: &Target<'_>, up: &Upstreams, sha256: &str) -> Result<(), ApiError> {
    let (state, reg) = (t.state, t.reg.clone());
    // Another flight stored it while this one waited.
    if reg.store.exists(sha256) {
        return Ok(());
    }
    let found = {
        let (reg, sha256) = (reg.clone(), sha256.to_string());
        state
            .db(move |conn| {
                // The first source whose line the index holds.
                for source in rows::blob_sources(conn, &reg.space, &sha256)? {
                    let file = reg.index.read_file(&crate::index::package_path(&source.name))?;
                    let lines = file.as_deref().map(|f| crate::upstream::parse(&source.name, f)).transpose();
                    let line = lines.ok().flatten().into_iter().flatten().map(|(_, l)| l);
                    if let Some(line) =
                        line.into_iter().find(|l| l.vers == source.version && l.cksum == sha256)
                    {
                        return Ok(Some((source.upstream, line)));
                    }
                }
                Ok(None)
            })
            .await?
    };
    // No cached line names it: the 404 of any missing file.
    let Some((upstream, line)) = found else { return Ok(()) };
    let Some(src) = up.named(&upstream) else { return Ok(()) };
    let bytes = up.blob(src, &line).await.map_err(failure)?;
    let (size, cksum, upstream) = (bytes.len() as u64, line.cksum.clone(), src.config.name.clone());
    let kept = {
        let (reg, upstream) = (reg.clone(), upstream.clone());
        tokio::task::spawn_blocking(move || {
            crate::upstream::keep_now(&reg, &upstream, &line.name, &line.vers, &bytes)
        })
    };
    kept.await.map_err(ApiError::internal)??;
    let at_ms = chrono::Utc::now().timestamp_millis();
    let fetch = Fetch { space: reg.space.clone(), cksum: cksum.clone(), size, at_ms };
    state.fetched.record(state, fetch).await?;
    let max_bytes = src.config.max_cache_bytes;
    if max_bytes > 0 {
        state.db(move |conn| evict(&reg, conn, &upstream, max_bytes, &cksum)).await?;
    }
    Ok(())
}

/// Removes the least recently fetched blobs of `upstream` until its blobs
/// fit in `max_bytes` (never `keep`, just fetched). Their signatures and
/// index lines stay; a later miss fetches the bytes again.
fn evict(
    reg: &crate::registry::Registry,
    conn: &crate::db::Conn,
    upstream: &str,
    max_bytes: u64,
    keep: &str,
) -> anyhow::Result<()> {
    let blobs = rows::blobs_by_age(conn, &reg.space, upstream)?;
    let mut total: u64 = blobs.iter().map(|(_, size)| size).sum();
    for (sha256, size) in blobs {
        if total <= max_bytes {
            break;
        }
        if sha256 == keep {
            continue;
        }
        reg.root.remove(&reg.root.layout().blob(&sha256))?;
        rows::evicted(conn, &reg.space, &sha256)?;
        total -= size;
    }
    Ok(())
}

/// Refuses a new local name that an upstream offers (one request to the
/// first upstream that may serve it), unless it is local already or
/// claimed. An upstream that cannot say refuses too: the name might be its.
pub async fn guard_new_name(req: &super::Request<'_>, name: &str) -> Result<(), ApiError> {
    let Some(up) = req.state.upstreams.clone() else { return Ok(()) };
    let space = req.space();
    if up.for_name(name, space.org()).is_none() {
        return Ok(());
    }
    let (org, n) = (space.org().map(str::to_string), name.to_string());
    let local = req
        .state
        .db(move |conn| {
            Ok(crate::db::find_package(conn, &space, &n)?.is_some() || rows::claimed(conn, &space, &n)?)
        })
        .await?;
    if local {
        return Ok(());
    }
    match up.offers(name, org.as_deref()).await {
        Ok(None) => Ok(()),
        Ok(Some(upstream)) => Err(crate::publish::upstream_name(name, &upstream).into()),
        Err(e) => Err(failure(e)),
    }
}
