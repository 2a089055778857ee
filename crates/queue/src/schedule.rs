//! The retry policy: when a deferred recipient is tried again, when it
//! expires, and when its sender is told that delivery is delayed.
//!
//! Pure: the caller passes `now` (unix seconds) and a jitter value drawn
//! from its own random number generator, so every decision is a function
//! of its inputs and table-testable. RFC 5321 §4.5.4.1 asks for a retry
//! interval of at least 30 minutes and a give-up time of at least 4–5 days;
//! the default starts faster (5 minutes, as Postfix and mox do, because most
//! temporary failures are greylisting that clears within minutes) and backs
//! off exponentially to hourly.

use std::time::Duration;

/// When to retry and when to give up. Each field's default is stated at
/// the field, with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay after the 1st, 2nd, … failed attempt; the last entry repeats
    /// for every later attempt. Default: 5m, 10m, 20m, 40m, then hourly —
    /// greylisting usually clears within minutes, and hourly afterwards is
    /// RFC 5321 §4.5.4.1's "at least 30 minutes". An empty list means no
    /// retries: the first temporary failure expires the recipient.
    pub schedule: Vec<Duration>,
    /// How long after acceptance a message is given up on and bounced.
    /// Default: 5 days (RFC 5321 §4.5.4.1: "the give-up time generally
    /// needs to be at least 4-5 days").
    pub max_age: Duration,
    /// When to tell the sender that a message is still undelivered
    /// (RFC 3464 `Action: delayed`), counted from acceptance; `None` never
    /// sends delay notices. Default: 4 hours, sendmail's `queuewarn`.
    pub delay_notice_after: Option<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        RetryPolicy {
            schedule: vec![
                minutes(5),
                minutes(10),
                minutes(20),
                minutes(40),
                minutes(60),
            ],
            max_age: Duration::from_secs(5 * 24 * 3600),
            delay_notice_after: Some(Duration::from_secs(4 * 3600)),
        }
    }
}

/// What to do with a recipient after a temporary failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Try again at this time (unix seconds).
    RetryAt(i64),
    /// Give up: the next try would come after the message's maximum age.
    /// The recipient fails permanently (RFC 3463 4.4.7, delivery time
    /// expired) and the sender gets a bounce.
    Expire,
}

impl RetryPolicy {
    /// The decision after `attempts` attempts (counting the one that just
    /// failed; 0 is read as 1) for a message accepted at `created`, at time
    /// `now`. `jitter` in `0.0..=1.0` (clamped; NaN reads as 0.5) spreads
    /// the delay by ±10% so that messages deferred together do not retry
    /// together.
    ///
    /// Expires once `now + delay` would pass `created + max_age`: the last
    /// try happens at or before the expiry time, never after it.
    pub fn next_attempt(&self, attempts: u32, created: i64, now: i64, jitter: f64) -> Decision {
        let Some(base) = self.base_delay(attempts) else {
            return Decision::Expire;
        };
        let jitter = if jitter.is_nan() {
            0.5
        } else {
            jitter.clamp(0.0, 1.0)
        };
        let factor = 1.0 + JITTER_SPREAD * (2.0 * jitter - 1.0);
        // At least one second, so a zero-length schedule cannot spin.
        let delay = ((base.as_secs_f64() * factor).round() as i64).max(1);
        let at = now.saturating_add(delay);
        if at > self.expires_at(created) {
            Decision::Expire
        } else {
            Decision::RetryAt(at)
        }
    }

    /// The delay before jitter after `attempts` attempts; `None` when the
    /// schedule is empty.
    pub fn base_delay(&self, attempts: u32) -> Option<Duration> {
        let index = (attempts.max(1) - 1) as usize;
        self.schedule
            .get(index)
            .or_else(|| self.schedule.last())
            .copied()
    }

    /// Unix seconds after which a message accepted at `created` is no
    /// longer tried.
    pub fn expires_at(&self, created: i64) -> i64 {
        let max_age = i64::try_from(self.max_age.as_secs()).unwrap_or(i64::MAX);
        created.saturating_add(max_age)
    }

    /// True when a delay notice (RFC 3464 `Action: delayed`) is due now for
    /// a message accepted at `created`, unless one was `already_sent`.
    pub fn delay_notice_due(&self, created: i64, now: i64, already_sent: bool) -> bool {
        match self.delay_notice_after {
            Some(after) if !already_sent => {
                let after = i64::try_from(after.as_secs()).unwrap_or(i64::MAX);
                now.saturating_sub(created) >= after
            }
            _ => false,
        }
    }
}

/// ±10% around the scheduled delay.
const JITTER_SPREAD: f64 = 0.1;

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const MIN: i64 = 60;
    const HOUR: i64 = 3600;
    const DAY: i64 = 24 * HOUR;

    #[test]
    fn default_schedule_table() {
        let policy = RetryPolicy::default();
        let created = 1_000_000;
        // (attempts, now offset, jitter, expected)
        let table = [
            (0, 0, 0.5, Decision::RetryAt(created + 5 * MIN)),
            (1, 0, 0.5, Decision::RetryAt(created + 5 * MIN)),
            (2, 0, 0.5, Decision::RetryAt(created + 10 * MIN)),
            (3, 0, 0.5, Decision::RetryAt(created + 20 * MIN)),
            (4, 0, 0.5, Decision::RetryAt(created + 40 * MIN)),
            (5, 0, 0.5, Decision::RetryAt(created + HOUR)),
            (50, 0, 0.5, Decision::RetryAt(created + HOUR)),
            // ±10%.
            (1, 0, 0.0, Decision::RetryAt(created + 270)),
            (1, 0, 1.0, Decision::RetryAt(created + 330)),
            (5, 0, 0.0, Decision::RetryAt(created + 3240)),
            (5, 0, 1.0, Decision::RetryAt(created + 3960)),
            // Out-of-range jitter is clamped.
            (1, 0, -3.0, Decision::RetryAt(created + 270)),
            (1, 0, 7.0, Decision::RetryAt(created + 330)),
            (1, 0, f64::NAN, Decision::RetryAt(created + 300)),
            // Up to the expiry time, but not past it.
            (9, 5 * DAY - HOUR, 0.5, Decision::RetryAt(created + 5 * DAY)),
            (9, 5 * DAY - HOUR + 1, 0.5, Decision::Expire),
            (9, 5 * DAY - HOUR, 0.6, Decision::Expire),
            (9, 6 * DAY, 0.5, Decision::Expire),
        ];
        for (attempts, offset, jitter, want) in table {
            assert_eq!(
                policy.next_attempt(attempts, created, created + offset, jitter),
                want,
                "attempts {attempts}, now +{offset}, jitter {jitter}"
            );
        }
    }

    #[test]
    fn empty_schedule_expires_at_once() {
        let policy = RetryPolicy {
            schedule: vec![],
            ..RetryPolicy::default()
        };
        assert_eq!(policy.next_attempt(1, 0, 0, 0.5), Decision::Expire);
    }

    #[test]
    fn zero_delay_still_moves_forward() {
        let policy = RetryPolicy {
            schedule: vec![Duration::ZERO],
            ..RetryPolicy::default()
        };
        assert_eq!(policy.next_attempt(1, 0, 10, 0.5), Decision::RetryAt(11));
    }

    #[test]
    fn delay_notice_table() {
        let policy = RetryPolicy::default();
        let table = [
            (0, false, false),
            (4 * HOUR - 1, false, false),
            (4 * HOUR, false, true),
            (4 * HOUR, true, false),
            (3 * DAY, false, true),
        ];
        for (age, sent, want) in table {
            assert_eq!(
                policy.delay_notice_due(100, 100 + age, sent),
                want,
                "age {age}"
            );
        }
        let never = RetryPolicy {
            delay_notice_after: None,
            ..RetryPolicy::default()
        };
        assert!(!never.delay_notice_due(0, 10 * DAY, false));
    }

    fn policy_strategy() -> impl Strategy<Value = RetryPolicy> {
        (
            proptest::collection::vec(0u64..10 * 24 * 3600, 1..8),
            0u64..20 * 24 * 3600,
        )
            .prop_map(|(mut delays, max_age)| {
                delays.sort_unstable();
                RetryPolicy {
                    schedule: delays.into_iter().map(Duration::from_secs).collect(),
                    max_age: Duration::from_secs(max_age),
                    delay_notice_after: None,
                }
            })
    }

    proptest! {
        #[test]
        fn never_past_max_age(
            policy in policy_strategy(),
            attempts in 0u32..100,
            created in 0i64..2_000_000_000,
            elapsed in 0i64..30 * 24 * 3600,
            jitter in 0.0f64..=1.0,
        ) {
            let now = created + elapsed;
            match policy.next_attempt(attempts, created, now, jitter) {
                Decision::RetryAt(at) => {
                    prop_assert!(at > now);
                    prop_assert!(at <= policy.expires_at(created));
                }
                Decision::Expire => {}
            }
        }

        #[test]
        fn monotone_in_attempts(
            policy in policy_strategy(),
            attempts in 0u32..100,
            jitter in 0.0f64..=1.0,
        ) {
            // Same jitter, same clock: a later attempt never waits less.
            let policy = RetryPolicy { max_age: Duration::from_secs(1 << 40), ..policy };
            let a = policy.next_attempt(attempts, 0, 0, jitter);
            let b = policy.next_attempt(attempts + 1, 0, 0, jitter);
            match (a, b) {
                (Decision::RetryAt(a), Decision::RetryAt(b)) => prop_assert!(a <= b),
                other => prop_assert!(false, "unexpected {other:?}"),
            }
        }

        #[test]
        fn once_expired_stays_expired(
            policy in policy_strategy(),
            attempts in 0u32..100,
            elapsed in 0i64..30 * 24 * 3600,
            later in 0i64..1_000_000,
        ) {
            if policy.next_attempt(attempts, 0, elapsed, 0.5) == Decision::Expire {
                prop_assert_eq!(
                    policy.next_attempt(attempts + 1, 0, elapsed + later, 0.5),
                    Decision::Expire
                );
            }
        }
    }
}
