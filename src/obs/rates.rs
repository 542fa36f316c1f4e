//! `instantaneous_*` INFO fields: Redis samples its counters every 100 ms
//! and reports the mean rate of the last 16 samples.

/// Samples averaged.
pub const SAMPLES: usize = 16;

/// One tracked counter.
#[derive(Clone, Debug, Default)]
pub struct Track {
    last_ms: u64,
    last_value: u64,
    samples: [f64; SAMPLES],
    next: usize,
}

impl Track {
    /// Records the counter's `value` at `now_ms`.
    pub fn sample(&mut self, now_ms: u64, value: u64) {
        if self.last_ms != 0 && now_ms > self.last_ms {
            let per_sec = value.saturating_sub(self.last_value) as f64 * 1000.0
                / (now_ms - self.last_ms) as f64;
            self.samples[self.next] = per_sec;
            self.next = (self.next + 1) % SAMPLES;
        }
        self.last_ms = now_ms;
        self.last_value = value;
    }

    /// Mean per-second rate over the samples.
    pub fn rate(&self) -> f64 {
        self.samples.iter().sum::<f64>() / SAMPLES as f64
    }

    /// After CONFIG RESETSTAT: counters restart from zero.
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

/// The three tracked counters.
#[derive(Clone, Debug, Default)]
pub struct Rates {
    /// Commands.
    pub ops: Track,
    /// Bytes read from clients.
    pub net_in: Track,
    /// Bytes written to clients.
    pub net_out: Track,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_of_last_samples() {
        let mut t = Track::default();
        for i in 0..=SAMPLES as u64 {
            t.sample(1000 + i * 100, i * 10);
        }
        assert!((t.rate() - 100.0).abs() < 1e-9);
    }
}
