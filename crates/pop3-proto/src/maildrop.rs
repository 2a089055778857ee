//! The maildrop as a session sees it: the listing fixed at login plus the
//! deletion marks (RFC 1939 §5).

/// One message of the listing the driver hands over at login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageEntry {
    /// Unique id for UIDL: 1–70 characters in 0x21–0x7E (RFC 1939 §7), as
    /// `store::MessageInfo` guarantees. Other characters are replaced by `_`
    /// when sent, so a bad id can never break a response line.
    pub uid: String,
    /// Exact size in octets as sent (CRLF line ends, before byte-stuffing).
    pub size: u64,
}

/// The listing and which messages are marked deleted.
#[derive(Debug, Default)]
pub(crate) struct Maildrop {
    messages: Vec<MessageEntry>,
    deleted: Vec<bool>,
}

impl Maildrop {
    pub(crate) fn new(messages: Vec<MessageEntry>) -> Self {
        let deleted = vec![false; messages.len()];
        Maildrop { messages, deleted }
    }

    /// Messages not marked deleted, and their total size (RFC 1939 §5 STAT:
    /// "messages marked as deleted are not counted in either total").
    pub(crate) fn stat(&self) -> (usize, u64) {
        self.live().fold((0, 0u64), |(n, size), (_, m)| {
            (n + 1, size.saturating_add(m.size))
        })
    }

    /// The message a 1-based number names, if it exists and is not deleted.
    /// Returns its 0-based index.
    pub(crate) fn get(&self, msg: u64) -> Option<(usize, &MessageEntry)> {
        let index = usize::try_from(msg.checked_sub(1)?).ok()?;
        match self.deleted.get(index) {
            Some(false) => self.messages.get(index).map(|m| (index, m)),
            _ => None,
        }
    }

    /// The message at a 0-based index, deleted or not.
    pub(crate) fn entry(&self, index: usize) -> Option<&MessageEntry> {
        self.messages.get(index)
    }

    /// Messages not marked deleted, with their 0-based index.
    pub(crate) fn live(&self) -> impl Iterator<Item = (usize, &MessageEntry)> {
        self.messages
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.deleted[*i])
    }

    /// Marks a message deleted; `index` comes from [`Maildrop::get`].
    pub(crate) fn delete(&mut self, index: usize) {
        if let Some(mark) = self.deleted.get_mut(index) {
            *mark = true;
        }
    }

    /// RSET: unmarks every message.
    pub(crate) fn reset(&mut self) {
        self.deleted.fill(false);
    }

    /// 0-based indices of the messages marked deleted, ascending.
    pub(crate) fn deletions(&self) -> Vec<usize> {
        (0..self.deleted.len())
            .filter(|&i| self.deleted[i])
            .collect()
    }
}

/// A uid as sent: characters outside 0x21–0x7E become `_` (see
/// [`MessageEntry::uid`]).
pub(crate) fn wire_uid(uid: &str) -> String {
    if uid.is_empty() {
        return "_".to_owned();
    }
    uid.chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(uid: &str, size: u64) -> MessageEntry {
        MessageEntry {
            uid: uid.into(),
            size,
        }
    }

    #[test]
    fn numbers_deletions_and_totals() {
        let mut drop = Maildrop::new(vec![entry("a", 10), entry("b", 20), entry("c", 30)]);
        assert_eq!(drop.stat(), (3, 60));
        assert_eq!(drop.get(0), None);
        assert_eq!(drop.get(1).map(|(i, m)| (i, m.size)), Some((0, 10)));
        assert_eq!(drop.get(3).map(|(i, _)| i), Some(2));
        assert_eq!(drop.get(4), None);
        assert_eq!(drop.get(u64::MAX), None);
        drop.delete(1);
        assert_eq!(drop.get(2), None);
        assert_eq!(drop.stat(), (2, 40));
        drop.delete(0);
        assert_eq!(drop.deletions(), vec![0, 1]);
        drop.reset();
        assert_eq!(drop.deletions(), Vec::<usize>::new());
        assert_eq!(drop.stat(), (3, 60));
    }

    #[test]
    fn uids_cannot_break_lines() {
        assert_eq!(wire_uid("abc.123"), "abc.123");
        assert_eq!(wire_uid("a b\r\nc"), "a_b__c");
        assert_eq!(wire_uid("é"), "_");
        assert_eq!(wire_uid(""), "_");
    }
}
