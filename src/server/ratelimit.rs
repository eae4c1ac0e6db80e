//! Rate limits (SPEC section 7) with governor token buckets: by client
//! address for requests without a valid token, by account after. Every API
//! response carries RateLimit-Limit/Remaining/Reset.

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use crate::config::{self, RateLimits};

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

/// The route classes that have their own bucket.
#[derive(Clone, Copy, Debug)]
pub enum Class {
    /// Health, whoami, token and owner reads.
    Read,
    /// Publish, register, yank, owner changes.
    Write,
    TokenCreate,
    Export,
    Delete,
}

/// The outcome, rendered as headers (and a 429 when `allowed` is false).
#[derive(Debug, Clone, Copy)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the bucket is full again.
    pub reset: u64,
    /// Seconds until the next request is allowed (for Retry-After).
    pub retry_after: u64,
}

struct Bucket<K: std::hash::Hash + Eq + Clone> {
    limiter: Keyed<K>,
    quota: config::Quota,
}

impl<K: std::hash::Hash + Eq + Clone> Bucket<K> {
    fn new(q: config::Quota) -> Self {
        let period = Duration::from_secs(q.per_seconds.max(1) as u64) / q.refill.max(1);
        let quota = Quota::with_period(period)
            .expect("period is positive")
            .allow_burst(NonZeroU32::new(q.burst.max(1)).unwrap());
        Bucket {
            limiter: RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>(),
            quota: q,
        }
    }

    fn period_secs(&self) -> f64 {
        self.quota.per_seconds.max(1) as f64 / self.quota.refill.max(1) as f64
    }

    fn check(&self, key: &K) -> Decision {
        let limit = self.quota.burst.max(1);
        match self.limiter.check_key(key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Decision {
                    allowed: true,
                    limit,
                    remaining,
                    reset: ((limit - remaining) as f64 * self.period_secs()).ceil() as u64,
                    retry_after: 0,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Decision {
                    allowed: false,
                    limit,
                    remaining: 0,
                    reset: (limit as f64 * self.period_secs()).ceil() as u64,
                    retry_after: wait.as_secs_f64().ceil().max(1.0) as u64,
                }
            }
        }
    }
}

pub struct Limits {
    enabled: bool,
    anonymous: Bucket<IpAddr>,
    reads: Bucket<i64>,
    writes: Bucket<i64>,
    token_create: Bucket<i64>,
    export: Bucket<i64>,
    delete: Bucket<i64>,
}

impl Limits {
    pub fn new(cfg: &RateLimits) -> Limits {
        Limits {
            enabled: cfg.enabled,
            anonymous: Bucket::new(cfg.anonymous),
            reads: Bucket::new(cfg.reads),
            writes: Bucket::new(cfg.writes),
            token_create: Bucket::new(cfg.token_create),
            export: Bucket::new(cfg.export),
            delete: Bucket::new(cfg.delete),
        }
    }

    /// A request without a valid token, from `ip`.
    pub fn anonymous(&self, ip: IpAddr) -> Decision {
        self.decide(|| self.anonymous.check(&ip), self.anonymous.quota)
    }

    /// A request by account `user_id` in `class`.
    pub fn account(&self, user_id: i64, class: Class) -> Decision {
        let bucket = match class {
            Class::Read => &self.reads,
            Class::Write => &self.writes,
            Class::TokenCreate => &self.token_create,
            Class::Export => &self.export,
            Class::Delete => &self.delete,
        };
        self.decide(|| bucket.check(&user_id), bucket.quota)
    }

    fn decide(&self, check: impl FnOnce() -> Decision, quota: config::Quota) -> Decision {
        if self.enabled {
            check()
        } else {
            Decision { allowed: true, limit: quota.burst, remaining: quota.burst, reset: 0, retry_after: 0 }
        }
    }
}
