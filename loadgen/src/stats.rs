//! Counting and summarising: latency histograms (sharded so that tasks on several worker
//! threads rarely meet on a lock), per-subscriber sequence tracking (lost, duplicated,
//! out-of-order), and the summary / JSON formatting shared by every scenario.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

pub fn new_hist() -> Histogram<u64> {
    // 1 µs .. 1 h, 3 significant figures.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("histogram bounds")
}

const SHARDS: usize = 8;

/// A latency histogram (µs) that many tasks record into.
pub struct SharedHist {
    shards: Vec<Mutex<Histogram<u64>>>,
}

impl Default for SharedHist {
    fn default() -> Self {
        SharedHist {
            shards: (0..SHARDS).map(|_| Mutex::new(new_hist())).collect(),
        }
    }
}

impl SharedHist {
    pub fn record(&self, who: usize, us: u64) {
        let mut h = self.shards[who % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        h.saturating_record(us.max(1));
    }
    pub fn merged(&self) -> Histogram<u64> {
        let mut out = new_hist();
        for s in &self.shards {
            let h = s.lock().unwrap_or_else(|p| p.into_inner());
            let _ = out.add(&*h);
        }
        out
    }
}

/// Percentiles of a µs histogram, in milliseconds, as JSON.
pub fn pct_json(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return json!({"count": 0});
    }
    let ms = |us: u64| (us as f64 / 1000.0 * 1000.0).round() / 1000.0;
    json!({
        "count": h.len(),
        "p50_ms": ms(h.value_at_quantile(0.50)),
        "p90_ms": ms(h.value_at_quantile(0.90)),
        "p99_ms": ms(h.value_at_quantile(0.99)),
        "p999_ms": ms(h.value_at_quantile(0.999)),
        "max_ms": ms(h.max()),
        "mean_ms": (h.mean() / 1000.0 * 1000.0).round() / 1000.0,
    })
}

/// One human-readable line of percentiles.
pub fn pct_line(name: &str, h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return format!("  {name:<22} (no samples)");
    }
    let f = |q: f64| fmt_ms(h.value_at_quantile(q));
    format!(
        "  {name:<22} n={:<9} p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
        h.len(),
        f(0.5),
        f(0.9),
        f(0.99),
        f(0.999),
        fmt_ms(h.max())
    )
}

pub fn fmt_ms(us: u64) -> String {
    if us >= 1_000_000 {
        format!("{:.2} s", us as f64 / 1e6)
    } else {
        format!("{:.2} ms", us as f64 / 1e3)
    }
}

/// Which sequence numbers of one channel a subscriber has seen.
#[derive(Default, Debug, Clone)]
pub struct SeqTrack {
    bits: Vec<u64>,
    pub unique: u64,
    pub dups: u64,
    pub out_of_order: u64,
    max_seen: Option<u64>,
    pub bad: u64,
}

/// Sequence numbers above this are treated as garbage, which bounds the bitmap.
const MAX_SEQ: u64 = 1 << 28;

impl SeqTrack {
    pub fn record(&mut self, seq: u64) {
        if seq >= MAX_SEQ {
            self.bad += 1;
            return;
        }
        let (w, b) = ((seq / 64) as usize, seq % 64);
        if self.bits.len() <= w {
            self.bits.resize((w + 1).next_power_of_two(), 0);
        }
        if self.bits[w] & (1 << b) != 0 {
            self.dups += 1;
            return;
        }
        self.bits[w] |= 1 << b;
        self.unique += 1;
        match self.max_seen {
            Some(m) if m > seq => self.out_of_order += 1,
            _ => self.max_seen = Some(seq),
        }
    }
}

/// What one phase of a run (the only phase of `fanout`, one step of `saturate`) counts.
#[derive(Default)]
pub struct Phase {
    pub e2e: SharedHist,
    pub publish_rtt: SharedHist,
    pub delivered: AtomicU64,
    pub published: AtomicU64,
    pub publish_errors: AtomicU64,
}

impl Phase {
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// CPU seconds per million deliveries.
pub fn per_million(cpu_s: Option<f64>, deliveries: u64) -> Option<f64> {
    let c = cpu_s?;
    if deliveries == 0 {
        return None;
    }
    Some(round3(c / deliveries as f64 * 1e6))
}

/// A printable optional number.
pub fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "n/a".into())
}

#[cfg(test)]
mod tests {
    use super::SeqTrack;

    #[test]
    fn counts_dups_and_reordering() {
        let mut t = SeqTrack::default();
        for s in [0, 1, 3, 2, 3, 5] {
            t.record(s);
        }
        assert_eq!(t.unique, 5);
        assert_eq!(t.dups, 1);
        assert_eq!(t.out_of_order, 1);
    }
}
