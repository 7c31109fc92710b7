//! What a team did during this run, counted in memory for reports (the durable truth is the
//! team's store and its topic).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::team::store::BatchReport;

#[derive(Debug)]
pub struct TeamMetrics {
    pub team: &'static str,
    processed: AtomicU64,
    duplicates: AtomicU64,
    dead_lettered: AtomicU64,
    rejections: AtomicU64,
    relayed: AtomicU64,
    batches: AtomicU64,
    kinds: Mutex<BTreeMap<&'static str, u64>>,
    reasons: Mutex<BTreeMap<&'static str, u64>>,
    /// Publish-to-team latency in microseconds: from the event's time to the commit of the
    /// team's transaction.
    latency_us: Mutex<Histogram<u64>>,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TeamSnapshot {
    /// Events of this run the team handled: decided (accepted or rejected) or dead-lettered.
    pub processed: u64,
    pub duplicates_skipped: u64,
    pub dead_lettered: u64,
    pub rejections: u64,
    pub relayed: u64,
    pub batches: u64,
    pub effects: BTreeMap<String, u64>,
    pub rejection_reasons: BTreeMap<String, u64>,
    pub latency_ms: Latency,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Default)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Latency::default();
        }
        let ms = |us: u64| (us as f64 / 1000.0 * 100.0).round() / 100.0;
        Latency {
            p50: ms(h.value_at_quantile(0.50)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
        }
    }
}

/// An empty latency histogram: 1 µs to 1 hour, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

impl TeamMetrics {
    pub fn new(team: &'static str) -> Self {
        TeamMetrics {
            team,
            processed: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            rejections: AtomicU64::new(0),
            relayed: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            kinds: Mutex::default(),
            reasons: Mutex::default(),
            latency_us: Mutex::new(new_histogram()),
        }
    }

    pub(crate) fn record_batch(&self, report: &BatchReport, committed_at_us: i64) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.duplicates
            .fetch_add(report.duplicates, Ordering::Relaxed);
        self.dead_lettered
            .fetch_add(report.dead_lettered, Ordering::Relaxed);
        self.processed.fetch_add(
            report.decided.len() as u64 + report.dead_lettered,
            Ordering::Relaxed,
        );
        let mut kinds = self.kinds.lock().expect("metrics lock");
        let mut reasons = self.reasons.lock().expect("metrics lock");
        let mut hist = self.latency_us.lock().expect("metrics lock");
        for d in &report.decided {
            *kinds.entry(d.outcome.kind).or_default() += 1;
            if let Some(reason) = d.outcome.rejection {
                self.rejections.fetch_add(1, Ordering::Relaxed);
                *reasons.entry(reason).or_default() += 1;
            }
            let us = (committed_at_us - d.published_at_us).max(1) as u64;
            hist.saturating_record(us);
        }
    }

    pub(crate) fn record_relayed(&self, n: u64) {
        self.relayed.fetch_add(n, Ordering::Relaxed);
    }

    /// Events handled this run, dead letters included, duplicates excluded.
    pub fn processed(&self) -> u64 {
        self.processed.load(Ordering::Relaxed)
    }

    /// Merge this team's latencies into `into` (for an all-teams figure).
    pub fn add_latencies_to(&self, into: &mut Histogram<u64>) {
        let _ = into.add(&*self.latency_us.lock().expect("metrics lock"));
    }

    pub fn snapshot(&self) -> TeamSnapshot {
        let to_strings =
            |m: &BTreeMap<&'static str, u64>| m.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        TeamSnapshot {
            processed: self.processed(),
            duplicates_skipped: self.duplicates.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            rejections: self.rejections.load(Ordering::Relaxed),
            relayed: self.relayed.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            effects: to_strings(&self.kinds.lock().expect("metrics lock")),
            rejection_reasons: to_strings(&self.reasons.lock().expect("metrics lock")),
            latency_ms: Latency::of(&self.latency_us.lock().expect("metrics lock")),
        }
    }
}
