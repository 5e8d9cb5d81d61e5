//! Latency recording with HdrHistogram, readable while it is being written.

use hdrhistogram::Histogram;
use std::sync::Mutex;

/// Percentiles of a latency distribution, in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LatencySnapshot {
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

/// A thread-safe HdrHistogram of nanoseconds (1 ns to 1 hour, 3 significant digits).
#[derive(Debug)]
pub struct LatencyRecorder {
    histogram: Mutex<Histogram<u64>>,
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyRecorder {
    /// An empty recorder.
    pub fn new() -> Self {
        let h = Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds");
        Self { histogram: Mutex::new(h) }
    }

    /// Record values under one lock (values are clamped into the histogram's range).
    pub fn record_all(&self, values: impl IntoIterator<Item = u64>) {
        let mut h = self.histogram.lock().unwrap_or_else(|e| e.into_inner());
        for v in values {
            h.saturating_record(v.max(1));
        }
    }

    /// Record one value.
    pub fn record(&self, value: u64) {
        self.record_all(std::iter::once(value));
    }

    /// Forget everything recorded.
    pub fn reset(&self) {
        self.histogram.lock().unwrap_or_else(|e| e.into_inner()).reset();
    }

    /// Current percentiles.
    pub fn snapshot(&self) -> LatencySnapshot {
        let h = self.histogram.lock().unwrap_or_else(|e| e.into_inner());
        if h.is_empty() {
            return LatencySnapshot::default();
        }
        LatencySnapshot {
            count: h.len(),
            min: h.min(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn percentiles_of_a_uniform_range() {
        let r = super::LatencyRecorder::new();
        r.record_all(1..=1000);
        let s = r.snapshot();
        assert_eq!(s.count, 1000);
        assert!((495..=505).contains(&s.p50), "{s:?}");
        assert!((985..=995).contains(&s.p99), "{s:?}");
        assert_eq!(s.max, 1000);
    }
}
