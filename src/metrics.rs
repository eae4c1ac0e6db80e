//! The process' Prometheus metrics (SPEC section 20), served at `GET
//! /metrics` on the admin listener. One registry per process, reached
//! through [`get`]: the request path, the writer thread, upstream fetches
//! and the job timers record into it without a handle passed down to each.
//! What a scrape reads off the registry itself (packages, versions, the
//! log's size, pending effects, the process' memory and descriptors) is
//! set by the scrape ([`Metrics::render`]), never kept up to date between.
//!
//! With `metrics = false` (`CAIRN_METRICS=off`) nothing is recorded and
//! the endpoint answers 404: the benchmark's "off".

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// The route classes requests are counted and logged by: a fixed set,
/// never a path (every path would be a series of its own).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum RouteClass {
    /// A file of the static root (index files, blobs, documents, pages).
    Static,
    /// A publish (native or cargo's).
    Publish,
    /// cargo's web API but its publish.
    Cargo,
    /// npm's door but its static reads (publish, edits, login, search, audit).
    Npm,
    /// Sign-in, sessions, the device flow.
    Auth,
    /// The event stream.
    Events,
    /// Any other API read.
    ApiRead,
    /// Any other API write.
    ApiWrite,
    /// Nothing of the above (a 405).
    Other,
}

impl RouteClass {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteClass::Static => "static",
            RouteClass::Publish => "publish",
            RouteClass::Cargo => "cargo",
            RouteClass::Npm => "npm",
            RouteClass::Auth => "auth",
            RouteClass::Events => "events",
            RouteClass::ApiRead => "api-read",
            RouteClass::ApiWrite => "api-write",
            RouteClass::Other => "other",
        }
    }
}

impl EncodeLabelValue for RouteClass {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        self.as_str().encode(encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    class: RouteClass,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabel {
    class: RouteClass,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriteLabels {
    kind: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    job: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobName {
    job: &'static str,
}

type Latency = Family<ClassLabel, Histogram, fn() -> Histogram>;
type JobLatency = Family<JobName, Histogram, fn() -> Histogram>;

pub struct Metrics {
    on: AtomicBool,
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Latency,
    groups: Counter,
    group_seconds: Histogram,
    group_size: Histogram,
    writes: Family<WriteLabels, Counter>,
    pending_effects: Gauge,
    lease_held: Gauge,
    hot_hits: Counter,
    hot_misses: Counter,
    upstream_fetches: Family<UpstreamLabels, Counter>,
    job_runs: Family<JobLabels, Counter>,
    job_seconds: JobLatency,
    log_entries: Gauge,
    packages: Gauge,
    versions: Gauge,
    resident: Gauge,
    virtual_bytes: Gauge,
    fds: Gauge,
}

/// Request latencies: 100 µs to about 26 s.
fn request_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 4.0, 10))
}

/// Jobs' durations: 10 ms to about 45 min.
fn job_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 4.0, 10))
}

/// The process' metrics.
pub fn get() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Metrics {
        let mut r = Registry::default();
        let c = r.sub_registry_with_prefix("cairn");
        let requests = Family::default();
        c.register("http_requests", "Requests answered, by route class and status", requests.clone());
        let latency: Latency = Family::new_with_constructor(request_buckets);
        c.register(
            "http_request_duration_seconds",
            "Time to answer a request, by route class",
            latency.clone(),
        );
        let groups = Counter::default();
        c.register("write_groups", "Write groups the writer ran", groups.clone());
        let group_seconds = Histogram::new(exponential_buckets(0.001, 4.0, 10));
        c.register("write_group_duration_seconds", "Time a write group took", group_seconds.clone());
        let group_size = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        c.register("write_group_size", "Changes in a write group", group_size.clone());
        let writes = Family::default();
        c.register("writes", "Writes answered, by kind and result", writes.clone());
        let pending_effects = Gauge::default();
        c.register("pending_effects", "Effects committed writes still owe", pending_effects.clone());
        let lease_held = Gauge::default();
        c.register(
            "writer_lease_held",
            "1 while this server holds the writer lease of shared storage",
            lease_held.clone(),
        );
        let hot_hits = Counter::default();
        c.register("hot_cache_hits", "Static reads answered from memory", hot_hits.clone());
        let hot_misses = Counter::default();
        c.register("hot_cache_misses", "Static reads that went to the storage", hot_misses.clone());
        let upstream_fetches = Family::default();
        c.register(
            "upstream_fetches",
            "Requests to upstream registries, by upstream and result",
            upstream_fetches.clone(),
        );
        let job_runs = Family::default();
        c.register("job_runs", "Timed jobs run, by job and result", job_runs.clone());
        let job_seconds: JobLatency = Family::new_with_constructor(job_buckets);
        c.register("job_duration_seconds", "Time a timed job took", job_seconds.clone());
        let log_entries = Gauge::default();
        c.register("log_entries", "Entries of the transparency log", log_entries.clone());
        let packages = Gauge::default();
        c.register("packages", "Packages with a live version (public registry)", packages.clone());
        let versions = Gauge::default();
        c.register("versions", "Live versions (public registry)", versions.clone());
        // The process' own, under the names every exporter gives them.
        let p = r.sub_registry_with_prefix("process");
        let resident = Gauge::default();
        p.register("resident_memory_bytes", "Resident memory size in bytes", resident.clone());
        let virtual_bytes = Gauge::default();
        p.register("virtual_memory_bytes", "Virtual memory size in bytes", virtual_bytes.clone());
        let fds = Gauge::default();
        p.register("open_fds", "Open file descriptors", fds.clone());
        // Set once: the registry keeps its own handle.
        let start_time: Gauge = Gauge::default();
        start_time.set(chrono::Utc::now().timestamp());
        p.register("start_time_seconds", "Start time of the process since the epoch in seconds", start_time);
        Metrics {
            on: AtomicBool::new(true),
            registry: r,
            requests,
            latency,
            groups,
            group_seconds,
            group_size,
            writes,
            pending_effects,
            lease_held,
            hot_hits,
            hot_misses,
            upstream_fetches,
            job_runs,
            job_seconds,
            log_entries,
            packages,
            versions,
            resident,
            virtual_bytes,
            fds,
        }
    }

    /// Turns recording on or off (`metrics` in registry.toml).
    pub fn set_enabled(&self, on: bool) {
        self.on.store(on, Ordering::Relaxed);
    }

    pub fn enabled(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    pub fn request(&self, class: RouteClass, status: u16, took: Duration) {
        if !self.enabled() {
            return;
        }
        self.requests.get_or_create(&RequestLabels { class, status }).inc();
        self.latency.get_or_create(&ClassLabel { class }).observe(took.as_secs_f64());
    }

    pub fn write_group(&self, size: usize, took: Duration) {
        if !self.enabled() {
            return;
        }
        self.groups.inc();
        self.group_seconds.observe(took.as_secs_f64());
        self.group_size.observe(size as f64);
    }

    /// A write answered: its kind (the audit's action) and `ok` or its error's code.
    pub fn write(&self, kind: &'static str, result: &'static str) {
        if self.enabled() {
            self.writes.get_or_create(&WriteLabels { kind, result }).inc();
        }
    }

    pub fn lease_held(&self, held: bool) {
        self.lease_held.set(held as i64);
    }

    pub fn hot_cache(&self, hit: bool) {
        if self.enabled() {
            match hit {
                true => self.hot_hits.inc(),
                false => self.hot_misses.inc(),
            };
        }
    }

    /// A request to an upstream: `ok`, `not-found` or `error`.
    pub fn upstream_fetch(&self, upstream: &str, result: &'static str) {
        if self.enabled() {
            self.upstream_fetches
                .get_or_create(&UpstreamLabels { upstream: upstream.to_string(), result })
                .inc();
        }
    }

    pub fn job(&self, job: &'static str, ok: bool, took: Duration) {
        if !self.enabled() {
            return;
        }
        let result = if ok { "ok" } else { "error" };
        self.job_runs.get_or_create(&JobLabels { job, result }).inc();
        self.job_seconds.get_or_create(&JobName { job }).observe(took.as_secs_f64());
    }

    /// The text exposition, with what a scrape reads set first.
    pub fn render(&self, now: &Scrape) -> String {
        self.pending_effects.set(now.pending_effects as i64);
        self.log_entries.set(now.log_entries as i64);
        self.packages.set(now.packages);
        self.versions.set(now.versions);
        let (resident, virtual_bytes) = memory();
        self.resident.set(resident as i64);
        self.virtual_bytes.set(virtual_bytes as i64);
        self.fds.set(open_fds() as i64);
        let mut out = String::new();
        prometheus_client::encoding::text::encode_registry(&mut out, &self.registry)
            .expect("writing to a String");
        prometheus_text(&out)
    }
}

/// The client's OpenMetrics text as Prometheus' text format (0.0.4), which
/// Prometheus and `promtool check metrics` read: a counter's family is
/// named with its samples' `_total` (OpenMetrics names it without), and
/// there is no `# EOF`.
fn prometheus_text(open_metrics: &str) -> String {
    let counters: std::collections::HashSet<&str> =
        open_metrics.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
    let mut out = String::with_capacity(open_metrics.len() + 16 * counters.len());
    for line in open_metrics.lines() {
        let comment = ["# HELP ", "# TYPE "].into_iter().find(|p| line.starts_with(p));
        match comment.and_then(|p| line[p.len()..].split_once(' ').map(|(name, rest)| (p, name, rest))) {
            Some((p, name, rest)) if counters.contains(name) => {
                out.push_str(&format!("{p}{name}_total {rest}\n"));
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// What a scrape reads off the registry.
pub struct Scrape {
    pub pending_effects: usize,
    pub log_entries: u64,
    pub packages: i64,
    pub versions: i64,
}

/// Resident and virtual size from `/proc/self/statm` (pages).
fn memory() -> (u64, u64) {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let mut pages = statm.split_whitespace().map(|p| p.parse::<u64>().unwrap_or(0));
    let (size, resident) = (pages.next().unwrap_or(0), pages.next().unwrap_or(0));
    // SAFETY: sysconf reads a constant of the system.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(0) as u64;
    (resident * page, size * page)
}

/// The entries of `/proc/self/fd` (the directory's own descriptor included).
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_exposed_with_help_and_type() {
        let m = Metrics::new();
        m.request(RouteClass::Static, 200, Duration::from_millis(1));
        m.write("publish", "ok");
        m.upstream_fetch("crates-io", "ok");
        m.job("search", true, Duration::from_secs(1));
        m.write_group(2, Duration::from_millis(3));
        m.hot_cache(false);
        let text = m.render(&Scrape { pending_effects: 2, log_entries: 7, packages: 1, versions: 3 });
        for family in [
            "cairn_http_requests_total",
            "cairn_http_request_duration_seconds",
            "cairn_write_groups_total",
            "cairn_writes_total",
            "cairn_pending_effects",
            "cairn_writer_lease_held",
            "cairn_hot_cache_hits_total",
            "cairn_upstream_fetches_total",
            "cairn_job_runs_total",
            "cairn_log_entries",
            "process_resident_memory_bytes",
            "process_open_fds",
        ] {
            assert!(text.contains(&format!("# TYPE {family} ")), "{family} missing:\n{text}");
        }
        assert!(text.contains("cairn_http_requests_total{class=\"static\",status=\"200\"} 1"), "{text}");
        assert!(text.contains("cairn_log_entries 7"), "{text}");
        assert!(!text.contains("# EOF"), "{text}");
        // The shipped dashboard asks only for series there are.
        let dashboard: serde_json::Value =
            serde_json::from_str(include_str!("../tools/deploy/grafana/cairn.json")).unwrap();
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"].as_str().unwrap();
                let names = expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
                for name in names.filter(|n| n.starts_with("cairn_") || n.starts_with("process_")) {
                    let family = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s));
                    let histogram = family.is_some_and(|f| text.contains(&format!("# TYPE {f} histogram")));
                    let scraped = histogram || text.contains(&format!("# TYPE {name} "));
                    assert!(scraped, "{}: {name} is not a metric", panel["title"]);
                }
            }
        }
    }
}
