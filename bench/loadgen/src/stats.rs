//! Latency percentiles, failure counts, and CPU time from /proc.

use std::time::Duration;

/// Recorded latencies, in microseconds.
#[derive(Default)]
pub(crate) struct Latencies(Vec<u64>);

impl Latencies {
    pub(crate) fn record(&mut self, d: Duration) {
        self.0
            .push(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    pub(crate) fn merge(&mut self, other: Latencies) {
        self.0.extend(other.0);
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// The `p`-th percentile (nearest rank) in milliseconds; 0 when empty.
    pub(crate) fn percentile_ms(&mut self, p: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.sort_unstable();
        let rank = ((p / 100.0) * self.0.len() as f64).ceil() as usize;
        let i = rank.clamp(1, self.0.len()) - 1;
        self.0[i] as f64 / 1000.0
    }
}

/// How many operations failed, and the first few reasons.
#[derive(Default)]
pub(crate) struct Failures {
    pub(crate) count: usize,
    pub(crate) first: Vec<String>,
}

impl Failures {
    const KEEP: usize = 3;

    pub(crate) fn record(&mut self, why: String) {
        self.count += 1;
        if self.first.len() < Self::KEEP {
            self.first.push(why);
        }
    }

    pub(crate) fn merge(&mut self, other: Failures) {
        self.count += other.count;
        for why in other.first {
            if self.first.len() < Self::KEEP {
                self.first.push(why);
            }
        }
    }
}

/// Clock ticks per second of /proc/*/stat times. Linux has used 100 on
/// every mainstream architecture for decades (USER_HZ); reading sysconf
/// would need libc for one constant.
const TICKS_PER_SECOND: f64 = 100.0;

/// The fields of /proc/PID/stat after the command name, which may itself
/// hold spaces and parentheses.
pub(crate) fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let close = stat.rfind(')')?;
    Some(stat.get(close + 1..)?.split_ascii_whitespace().collect())
}

/// CPU seconds (user + system) this process has used so far.
pub(crate) fn own_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some(fields) = stat_fields(&stat) else {
        return 0.0;
    };
    // After the name: state(0) ppid(1) ... utime(11) stime(12).
    ticks(&fields, 11) + ticks(&fields, 12)
}

/// Field `i` (counted after the name) as seconds.
pub(crate) fn ticks(fields: &[&str], i: usize) -> f64 {
    fields
        .get(i)
        .and_then(|f| f.parse::<u64>().ok())
        .map_or(0.0, |t| t as f64 / TICKS_PER_SECOND)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut l = Latencies::default();
        for ms in 1..=100 {
            l.record(Duration::from_millis(ms));
        }
        assert_eq!(l.percentile_ms(50.0), 50.0);
        assert_eq!(l.percentile_ms(99.0), 99.0);
        assert_eq!(l.percentile_ms(100.0), 100.0);
        assert_eq!(Latencies::default().percentile_ms(50.0), 0.0);
    }

    #[test]
    fn stat_names_with_spaces() {
        let fields = stat_fields("12 (a (b) c) S 1 2 3").unwrap_or_default();
        assert_eq!(fields, ["S", "1", "2", "3"]);
    }
}
