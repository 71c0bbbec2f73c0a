//! Sizes and spaces a batched backfill's batches by how long its own commits take.
//!
//! Every commit waits for the WAL to reach the disk, the application's as much as ours. When
//! the disk falls behind (the backfill's own writes, an autovacuum, the kernel writing back
//! dirty pages), our commit slows down first and by the same cause the application's do: the
//! backfill then halves its batches and steps aside for about twice that commit's time, so the
//! disk drains instead of queueing more of our writes in front of theirs. While commits stay
//! quick it grows the batches back to the plan's size, a step at a time.

use std::time::Duration;

/// A commit slower than this is never taken for congestion, however quick the quiet ones are.
const CONGESTED_FLOOR_MS: f64 = 10.0;
/// Congestion: a commit this many times the quiet commit latency.
const CONGESTED_FACTOR: f64 = 3.0;
/// The quiet latency rises by this fraction per batch, so one lucky commit does not set the
/// bar for the rest of the run (at ~20 batches a second it doubles in about 7 s).
const QUIET_DRIFT: f64 = 0.005;
/// The longest pause between two batches.
const MAX_PAUSE_MS: f64 = 1000.0;

#[derive(Debug, Clone)]
pub(super) struct Pace {
    /// The next batch's size (rows, or heap blocks for a table without a key).
    size: u64,
    /// The plan's batch size: the most a batch grows to.
    max_size: u64,
    min_size: u64,
    /// What a commit takes while the disk keeps up (the lowest seen, drifting up).
    quiet_commit_ms: Option<f64>,
}

impl Pace {
    pub(super) fn new(max_size: u64) -> Self {
        let max_size = max_size.max(1);
        Pace { size: max_size, max_size, min_size: (max_size / 16).max(1), quiet_commit_ms: None }
    }

    pub(super) fn size(&self) -> u64 {
        self.size
    }

    /// After a batch whose commit took `commit_ms`: the pause before the next batch (zero
    /// unless the disk is behind), with the next batch's size adjusted.
    pub(super) fn after_commit(&mut self, commit_ms: f64) -> Duration {
        let quiet = match self.quiet_commit_ms {
            None => commit_ms,
            Some(q) => (q * (1.0 + QUIET_DRIFT)).min(commit_ms),
        };
        self.quiet_commit_ms = Some(quiet);
        if commit_ms > (quiet * CONGESTED_FACTOR).max(CONGESTED_FLOOR_MS) {
            self.size = (self.size / 2).max(self.min_size);
            Duration::from_secs_f64((commit_ms * 2.0).min(MAX_PAUSE_MS) / 1000.0)
        } else {
            self.size = (self.size + self.max_size.div_ceil(8)).min(self.max_size);
            Duration::ZERO
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_commits_keep_the_plans_batch_size_and_no_pause() {
        let mut pace = Pace::new(5000);
        for _ in 0..50 {
            assert_eq!(pace.after_commit(3.0), Duration::ZERO);
        }
        assert_eq!(pace.size(), 5000);
    }

    #[test]
    fn a_slow_commit_halves_the_batch_and_pauses_for_twice_its_time() {
        let mut pace = Pace::new(5000);
        pace.after_commit(3.0);
        assert_eq!(pace.after_commit(40.0), Duration::from_millis(80));
        assert_eq!(pace.size(), 2500);
        pace.after_commit(400.0);
        pace.after_commit(4000.0);
        assert_eq!(pace.size(), 625);
        // Never below a sixteenth, never a pause over a second.
        for _ in 0..10 {
            assert!(pace.after_commit(4000.0) <= Duration::from_secs(1));
        }
        assert_eq!(pace.size(), 312);
    }

    #[test]
    fn the_batch_grows_back_in_eighths_once_commits_are_quick_again() {
        let mut pace = Pace::new(8000);
        pace.after_commit(2.0);
        pace.after_commit(50.0);
        pace.after_commit(50.0);
        assert_eq!(pace.size(), 2000);
        pace.after_commit(2.0);
        assert_eq!(pace.size(), 3000);
        for _ in 0..10 {
            pace.after_commit(2.0);
        }
        assert_eq!(pace.size(), 8000);
    }

    #[test]
    fn commits_under_the_floor_are_never_congestion() {
        let mut pace = Pace::new(1000);
        pace.after_commit(0.5);
        assert_eq!(pace.after_commit(9.0), Duration::ZERO);
        assert_eq!(pace.size(), 1000);
    }
}
