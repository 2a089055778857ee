//! Read-ahead for POP3 RETR: which messages to read in one trip to the
//! blocking pool.
//!
//! Clients mostly fetch a maildrop in order (RETR 1, 2, 3 …). A trip to the
//! blocking pool costs two thread wake-ups, more than reading a small
//! message from the page cache, so when requests come in order the window
//! grows (1, 2, 4 … up to [`MAX_MESSAGES`]) and one trip reads the next
//! several messages; a request out of order drops what was read and starts
//! again at one, so a client that picks single messages reads nothing extra.
//! What is held is bounded by [`MAX_BYTES`] per session.
//!
//! Once the window has grown, the session tops the held run up from the
//! page cache each time it has answered and waits for the client
//! ([`ReadAhead::top_up`], `Maildrop::idle`): no thread hand-off, the reading
//! done while the reply travels. A client that pipelines outruns that, and
//! the next messages are then read in the background while the held ones
//! are served ([`ReadAhead::refill`]): a sequential reader never waits for
//! the disk.

use std::collections::VecDeque;

/// Most messages read in one trip.
pub(crate) const MAX_MESSAGES: usize = 32;
/// Most octets held ahead per session (the requested message not counted).
pub(crate) const MAX_BYTES: u64 = 128 * 1024;

/// Per-session read-ahead state: what was read and not yet asked for.
#[derive(Debug, Default)]
pub(crate) struct ReadAhead {
    /// The index a sequential reader asks for next.
    next: usize,
    /// Messages to read on the next miss.
    window: usize,
    held: VecDeque<(usize, Vec<u8>)>,
}

impl ReadAhead {
    /// Takes message `index` if it was read ahead.
    pub(crate) fn take(&mut self, index: usize) -> Option<Vec<u8>> {
        while let Some((held, _)) = self.held.front() {
            if *held < index {
                self.held.pop_front();
            } else {
                break;
            }
        }
        match self.held.front() {
            Some((held, _)) if *held == index => {
                self.next = index + 1;
                self.held.pop_front().map(|(_, bytes)| bytes)
            }
            _ => None,
        }
    }

    /// Plans the reads for a miss on `index`: the indices to read, `index`
    /// first. `size(i)` is message i's size when it may be read whole (and
    /// `None` past the end or for a message too big to hold).
    pub(crate) fn plan(&mut self, index: usize, size: impl Fn(usize) -> Option<u64>) -> Vec<usize> {
        self.held.clear();
        self.window = if index == self.next && self.window > 0 {
            (self.window * 2).min(MAX_MESSAGES)
        } else {
            1
        };
        self.next = index + 1;
        let mut plan = vec![index];
        plan.extend(run_within(index + 1, self.window - 1, 0, size));
        plan
    }

    /// After a message was served from what is held: the indices to read in
    /// the background, when half the window or less is left and the reader
    /// goes in order. The window grows as on a miss; the indices continue
    /// the held run, and together with it stay within the window and
    /// [`MAX_BYTES`].
    pub(crate) fn refill(&mut self, size: impl Fn(usize) -> Option<u64>) -> Option<Vec<usize>> {
        if self.window < 2 || self.held.len() > self.window / 2 {
            return None;
        }
        self.window = (self.window * 2).min(MAX_MESSAGES);
        let start = self.held.back().map_or(self.next, |(i, _)| i + 1);
        let held: u64 = self.held.iter().map(|(_, b)| b.len() as u64).sum();
        let plan = run_within(start, self.window - self.held.len(), held, size);
        (!plan.is_empty()).then_some(plan)
    }

    /// While the reader goes in order: up to `most` indices that continue
    /// the held run within the window and [`MAX_BYTES`], to read now (the
    /// session is idle) so that the held run stays full and no background
    /// refill is needed. The window does not grow.
    pub(crate) fn top_up(&self, most: usize, size: impl Fn(usize) -> Option<u64>) -> Vec<usize> {
        if self.window < 2 || self.held.len() >= self.window {
            return Vec::new();
        }
        let start = self.held.back().map_or(self.next, |(i, _)| i + 1);
        let held: u64 = self.held.iter().map(|(_, b)| b.len() as u64).sum();
        run_within(start, most.min(self.window - self.held.len()), held, size)
    }

    /// Keeps what a planned read brought beyond the requested message, in
    /// index order.
    pub(crate) fn hold(&mut self, read: impl IntoIterator<Item = (usize, Vec<u8>)>) {
        self.held.extend(read);
    }
}

/// Up to `count` indices from `start` on whose sizes, added to `bytes`
/// already held, stay within [`MAX_BYTES`]; stops at the first that does
/// not fit or may not be read whole (`size` is `None`).
fn run_within(
    start: usize,
    count: usize,
    mut bytes: u64,
    size: impl Fn(usize) -> Option<u64>,
) -> Vec<usize> {
    let mut run = Vec::new();
    for i in start..start + count {
        match size(i) {
            Some(s) if bytes + s <= MAX_BYTES => {
                bytes += s;
                run.push(i);
            }
            _ => break,
        }
    }
    run
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn small(count: usize) -> impl Fn(usize) -> Option<u64> {
        move |i| (i < count).then_some(2048)
    }

    #[test]
    fn in_order_reads_grow_the_window_and_are_served_from_it() {
        let mut ra = ReadAhead::default();
        let mut trips = 0;
        for index in 0..100 {
            if ra.take(index).is_some() {
                continue;
            }
            trips += 1;
            let plan = ra.plan(index, small(100));
            assert_eq!(plan[0], index);
            ra.hold(plan[1..].iter().map(|&i| (i, vec![i as u8])));
        }
        // 1 + 2 + 4 + 8 + 16 + 32 + 32 + 5 = 100
        assert_eq!(trips, 8);
    }

    #[test]
    fn top_ups_continue_the_held_run_within_the_window() {
        let mut ra = ReadAhead::default();
        assert!(
            ra.top_up(2, small(100)).is_empty(),
            "no reader in order yet"
        );
        ra.plan(0, small(100));
        assert!(ra.top_up(2, small(100)).is_empty(), "window 1");
        let plan = ra.plan(1, small(100));
        assert_eq!(plan, vec![1, 2]);
        ra.hold([(2, vec![0; 2048])]);
        // Window 2, one held: one more, after the held run.
        assert_eq!(ra.top_up(2, small(100)), vec![3]);
        ra.hold([(3, vec![0; 2048])]);
        assert!(ra.top_up(2, small(100)).is_empty(), "the window is full");
        assert!(ra.take(2).is_some());
        assert_eq!(ra.top_up(2, small(100)), vec![4]);
        // Not past the end of the maildrop.
        assert!(ra.top_up(2, small(4)).is_empty());
    }

    #[test]
    fn refills_continue_the_held_run_and_grow_the_window() {
        let mut ra = ReadAhead::default();
        // A first miss reads one, a second in order two.
        assert_eq!(ra.refill(small(100)), None, "no window yet");
        ra.plan(0, small(100));
        assert_eq!(ra.refill(small(100)), None, "window 1: no background reads");
        assert_eq!(ra.plan(1, small(100)), vec![1, 2]);
        ra.hold(vec![(2, vec![2])]);
        assert!(ra.take(2).is_some());
        // Served from the held run: read on in the background, a window of 4.
        let plan = ra.refill(small(100));
        assert_eq!(plan, Some(vec![3, 4, 5, 6]));
        ra.hold((3..=6).map(|i| (i, vec![i as u8])));
        assert!(ra.take(3).is_some());
        assert_eq!(ra.refill(small(100)), None, "three of four held");
        assert!(ra.take(4).is_some());
        // Two held (5, 6) of a window now 8: six more, after them.
        assert_eq!(ra.refill(small(100)), Some(vec![7, 8, 9, 10, 11, 12]));
        ra.hold((7..=12).map(|i| (i, vec![i as u8])));
        for i in 5..=12 {
            assert_eq!(ra.take(i), Some(vec![i as u8]));
        }
        // Nothing held: the next run starts where the reader is, and the
        // window stops growing at MAX_MESSAGES.
        assert_eq!(ra.refill(small(1000)), Some((13..13 + 16).collect()));
        assert_eq!(ra.refill(small(1000)).map(|p| p.len()), Some(MAX_MESSAGES));
        assert_eq!(ra.refill(small(1000)).map(|p| p.len()), Some(MAX_MESSAGES));
        // The end of the maildrop and the byte bound stop a refill.
        assert_eq!(ra.refill(small(15)), Some(vec![13, 14]));
        assert_eq!(ra.refill(|_| Some(MAX_BYTES / 2 + 1)), Some(vec![13]));
    }

    #[test]
    fn held_bytes_are_bounded() {
        let mut ra = ReadAhead {
            window: MAX_MESSAGES,
            ..ReadAhead::default()
        };
        let plan = ra.plan(0, |_| Some(MAX_BYTES / 3));
        assert_eq!(plan, vec![0, 1, 2, 3]);
    }

    #[test]
    fn out_of_order_resets_and_reads_one() {
        let mut ra = ReadAhead::default();
        let plan = ra.plan(0, small(100));
        assert_eq!(plan, vec![0]);
        let plan = ra.plan(1, small(100));
        assert_eq!(plan, vec![1, 2]);
        ra.hold(vec![(2, b"two".to_vec())]);
        // A jump: nothing held survives, and only one message is read.
        assert_eq!(ra.take(50), None);
        assert_eq!(ra.plan(50, small(100)), vec![50]);
        assert_eq!(ra.take(2), None);
    }

    #[test]
    fn a_big_or_missing_message_stops_the_window() {
        let mut ra = ReadAhead::default();
        ra.plan(0, small(10));
        let plan = ra.plan(1, |i| if i == 2 { None } else { Some(10) });
        assert_eq!(plan, vec![1]);
        ra.plan(2, small(3));
        let plan = ra.plan(3, small(3));
        assert_eq!(plan, vec![3]);
    }

    #[test]
    fn skipped_held_messages_are_dropped() {
        let mut ra = ReadAhead::default();
        ra.plan(0, small(10));
        ra.hold(vec![
            (1, b"1".to_vec()),
            (2, b"2".to_vec()),
            (3, b"3".to_vec()),
        ]);
        assert_eq!(ra.take(2).unwrap(), b"2");
        assert_eq!(ra.take(1), None);
        assert_eq!(ra.take(3).unwrap(), b"3");
    }
}
