//! Rate-limited warnings for outages that repeat: the first few are logged, then at most one
//! per interval saying how many were held back, so a Redis or database that stays away for
//! hours does not flood the log, yet nobody misses that it is away.

use parking_lot::Mutex;
use std::time::{Duration, Instant};

/// Warnings logged before the limit starts.
pub(crate) const FIRST_WARNINGS: u32 = 3;
/// After those, at most one warning per this interval.
pub(crate) const WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// Decides whether the next repeat of one kind of warning is logged.
pub(crate) struct RateLog {
    first: u32,
    every: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    logged: u32,
    last: Option<Instant>,
    held_back: u64,
}

impl Default for RateLog {
    fn default() -> Self {
        RateLog::new(FIRST_WARNINGS, WARNING_INTERVAL)
    }
}

impl RateLog {
    pub(crate) fn new(first: u32, every: Duration) -> RateLog {
        RateLog {
            first,
            every,
            state: Mutex::new(State::default()),
        }
    }

    /// `Some(n)` when this warning should be logged, `n` being how many were held back since
    /// the last one logged; `None` when it should be held back.
    pub(crate) fn allow(&self) -> Option<u64> {
        let mut s = self.state.lock();
        let now = Instant::now();
        let due =
            s.logged < self.first || s.last.is_none_or(|t| now.duration_since(t) >= self.every);
        if due {
            s.logged = s.logged.saturating_add(1);
            s.last = Some(now);
            Some(std::mem::take(&mut s.held_back))
        } else {
            s.held_back += 1;
            None
        }
    }

    /// The outage is over: the next one starts with the first few logged again.
    pub(crate) fn reset(&self) {
        *self.state.lock() = State::default();
    }
}

/// ", N similar warnings held back" when any were, for the end of a warning.
pub(crate) fn held_back(n: u64) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" ({n} similar warnings held back)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_few_then_one_per_interval() {
        let log = RateLog::new(3, Duration::from_millis(200));
        assert_eq!(log.allow(), Some(0));
        assert_eq!(log.allow(), Some(0));
        assert_eq!(log.allow(), Some(0));
        assert_eq!(log.allow(), None);
        assert_eq!(log.allow(), None);
        std::thread::sleep(Duration::from_millis(220));
        assert_eq!(log.allow(), Some(2));
        assert_eq!(log.allow(), None);
        log.reset();
        assert_eq!(log.allow(), Some(0));
        assert_eq!(held_back(0), "");
        assert_eq!(held_back(2), " (2 similar warnings held back)");
    }
}
