//! Storage traits shared by every engine, and the pieces of storage logic
//! that do not depend on an engine: password hashing and aliases(5) parsing.
//!
//! Everything that persists goes through these traits: users and aliases
//! ([`UserDb`]), maildrops ([`MailStore`], [`Maildrop`]), the queue
//! ([`QueueStore`]) and DKIM keys ([`DkimKeyStore`]). The embedded
//! engine (`mailroom-store-maildir`) and the PostgreSQL engine implement
//! them; the agents (`mailroom-server`) hold `Arc<dyn …>` handles and never
//! a path or a connection string.
//!
//! Contract every engine keeps: a method that stores something returns only
//! once it is on stable storage (file and directory fsync'd, or committed).

pub mod aliases;
pub mod dkim;
#[doc(hidden)]
pub mod fuzzing;
pub mod names;
pub mod password;
pub mod queue;

use std::io;
use std::sync::Arc;

pub use aliases::{AliasTable, Expansion};
pub use dkim::{DkimAlgorithm, DkimKey, DkimKeyStore, NewDkimKey};
pub use queue::{QueueEntry, QueueStore, QueuedRecipient, RecipientState};

/// A local user as the directory knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The canonical user name: lower case, no `+tag`.
    pub name: String,
    /// PHC-format Argon2id hash of the password.
    pub password_hash: String,
    /// Plaintext-equivalent secret for APOP / CRAM-MD5, only when the user
    /// opted in (`user add --apop` / `--cram-md5`). Kept apart from the hash.
    pub shared_secret: Option<String>,
}

/// What a `user add` asks the directory to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// The user name; the engine lower-cases it.
    pub name: String,
    /// PHC-format Argon2id hash, from [`password::hash`].
    pub password_hash: String,
    /// The opt-in plaintext-equivalent secret, if any.
    pub shared_secret: Option<String>,
}

/// One message in a maildrop listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageInfo {
    /// Unique, stable id (RFC 1939 §7 UIDL: 1–70 characters in 0x21–0x7E).
    pub uid: String,
    /// Exact size in octets as POP3 sends it (CRLF line ends, before
    /// byte-stuffing).
    pub size: u64,
}

/// A message handed to the store for local delivery: the trace headers the
/// receiving agent prepends (`Return-Path:`, `Received:`) and the message as
/// received, both with CRLF line ends.
#[derive(Debug, Clone)]
pub struct IncomingMessage {
    /// Header lines written before the message, each ending in CRLF.
    pub prefix: Vec<u8>,
    /// The message as received (after DATA un-stuffing), shared between
    /// recipients without copying.
    pub body: Arc<Vec<u8>>,
}

impl IncomingMessage {
    /// Total octets the stored message holds.
    pub fn len(&self) -> u64 {
        (self.prefix.len() + self.body.len()) as u64
    }

    /// True when there is nothing to store.
    pub fn is_empty(&self) -> bool {
        self.prefix.is_empty() && self.body.is_empty()
    }
}

/// Errors from any store operation. The variant picks the SMTP/POP3 reply;
/// the payload is for the log only.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The user does not exist.
    #[error("no such user: {0}")]
    NoSuchUser(String),
    /// The user already exists (on `add`).
    #[error("user already exists: {0}")]
    UserExists(String),
    /// The name is not a valid user name.
    #[error("invalid user name: {0}")]
    InvalidName(String),
    /// Another session holds the maildrop lock (POP3 `[IN-USE]`).
    #[error("maildrop is locked by another session")]
    Locked,
    /// The user's quota would be exceeded (SMTP 552 5.2.2).
    #[error("quota exceeded for {0}")]
    QuotaExceeded(String),
    /// The disk or file system is full (SMTP 452 4.3.1); nothing half-written
    /// was left behind.
    #[error("no space left on the store")]
    NoSpace,
    /// A message index or uid that the maildrop does not hold.
    #[error("no such message")]
    NoSuchMessage,
    /// Stored data could not be understood (a damaged users file, say).
    #[error("corrupt store data: {0}")]
    Corrupt(String),
    /// The domain already has a DKIM key with this selector.
    #[error("DKIM key already exists: {0}")]
    KeyExists(String),
    /// A DKIM key, domain or selector the store cannot keep.
    #[error("invalid DKIM key: {0}")]
    InvalidKey(String),
    /// Any other I/O failure; temporary from the client's point of view.
    #[error("store I/O error: {0}")]
    Io(#[from] io::Error),
}

impl StoreError {
    /// Maps an I/O error, recognising a full disk or quota as [`StoreError::NoSpace`].
    pub fn from_io(err: io::Error) -> Self {
        match err.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => StoreError::NoSpace,
            _ => StoreError::Io(err),
        }
    }
}

/// The user directory and the alias table.
#[async_trait::async_trait]
pub trait UserDb: Send + Sync {
    /// Looks a user up by canonical name (lower case, no `+tag`).
    async fn lookup(&self, name: &str) -> Result<Option<User>, StoreError>;
    /// All users, sorted by name.
    async fn list(&self) -> Result<Vec<User>, StoreError>;
    /// Adds a user; fails with [`StoreError::UserExists`] if present.
    async fn add(&self, user: NewUser) -> Result<(), StoreError>;
    /// Replaces a user's password hash (and shared secret when `Some`).
    async fn set_password(
        &self,
        name: &str,
        password_hash: String,
        shared_secret: Option<Option<String>>,
    ) -> Result<(), StoreError>;
    /// Removes a user (not their mail).
    async fn delete(&self, name: &str) -> Result<(), StoreError>;
    /// The current alias table. Engines reload it when it changes, so edits
    /// take effect while the server runs.
    async fn aliases(&self) -> Result<Arc<AliasTable>, StoreError>;
}

/// Maildrops: local delivery in, POP3 access out.
#[async_trait::async_trait]
pub trait MailStore: Send + Sync {
    /// Delivers one message to each of `users` (canonical names, existing
    /// users). Returns only once every copy is durable; on error no user got
    /// a partial copy (a user may have a complete one: SMTP treats the whole
    /// transaction as failed, and the client's retry may duplicate).
    async fn deliver(&self, users: &[String], message: &IncomingMessage) -> Result<(), StoreError>;

    /// Opens `user`'s maildrop for a POP3 session, taking its exclusive lock.
    /// [`StoreError::Locked`] while another session (in any process) holds
    /// it. A lock held by a process that died is released by the engine.
    async fn open_maildrop(&self, user: &str) -> Result<Box<dyn Maildrop>, StoreError>;
}

/// A message as [`Maildrop::open`] hands it out. Either way it reads as an
/// `AsyncRead`; a caller that can use the bytes as they are takes
/// [`MessageBody::Whole`] without copying them.
pub enum MessageBody {
    /// The whole message, already read.
    Whole(Vec<u8>),
    /// The message streamed from the store.
    Stream(Box<dyn tokio::io::AsyncRead + Send + Unpin>),
}

impl MessageBody {
    /// The body as a reader.
    pub fn into_reader(self) -> Box<dyn tokio::io::AsyncRead + Send + Unpin> {
        match self {
            MessageBody::Whole(bytes) => Box::new(io::Cursor::new(bytes)),
            MessageBody::Stream(reader) => reader,
        }
    }
}

impl std::fmt::Debug for MessageBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MessageBody::Whole(bytes) => write!(f, "Whole({} octets)", bytes.len()),
            MessageBody::Stream(_) => f.write_str("Stream"),
        }
    }
}

/// An open, locked maildrop. Its listing is fixed when it is opened (RFC 1939
/// §5: message numbers do not change during a session). Dropping it without
/// [`Maildrop::commit`] releases the lock and deletes nothing.
#[async_trait::async_trait]
pub trait Maildrop: Send + Sync {
    /// The messages, in maildrop order (oldest first); POP3 message number
    /// `n` is `messages()[n - 1]`.
    fn messages(&self) -> &[MessageInfo];

    /// Opens message `index` (0-based): exactly `messages()[index].size`
    /// octets with CRLF line ends, whole when the store already holds it in
    /// memory, else as a stream.
    async fn open(&self, index: usize) -> Result<MessageBody, StoreError>;

    /// The session has answered and waits for its client: a moment for
    /// cheap work that makes the next [`Maildrop::open`] faster, done while
    /// the reply travels (the maildir reads the next message from the page
    /// cache). Must not block: no disk waits, no locks held long.
    fn idle(&self) {}

    /// Deletes the messages at `indices` durably and releases the lock (the
    /// POP3 UPDATE state). Returns only once the deletions are on disk.
    async fn commit(self: Box<Self>, indices: &[usize]) -> Result<(), StoreError>;
}
