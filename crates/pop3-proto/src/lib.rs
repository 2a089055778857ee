//! The POP3 wire protocol, server and client side, as pure state machines.
//!
//! This crate owns everything about POP3 that is bytes and rules: framing
//! client lines (CRLF only, 255 octets, RFC 2449 §4), parsing commands
//! ([`Command`]), deciding what each command may do in each state
//! (AUTHORIZATION, TRANSACTION, UPDATE; RFC 1939), formatting every response
//! byte-exact ([`Response`], with RFC 2449/3206 response codes), CAPA
//! (RFC 2449), STLS (RFC 2595), SASL PLAIN (RFC 5034, RFC 4616), APOP
//! digests (RFC 1939 §7), and the streaming byte-stuffing and TOP cut of
//! message content ([`ByteStuffer`], [`TopFilter`]).
//!
//! It refuses to do I/O of any kind: no sockets, files, clocks, tasks or
//! randomness. It does not check passwords, read messages, hold locks or
//! delete anything: when a command needs that, the session emits an
//! [`Event`] and waits for the driver (`mailroom-server`) to answer with a
//! decision method. It never holds message content: the driver streams it
//! from the store through [`ByteStuffer`]. So every command can be tested in
//! every state, input can arrive one byte at a time, and the whole thing can
//! be fuzzed.
//!
//! The [`client`] module is the other side, for `mailroom fetch`: a
//! [`ClientSession`] sends commands, reads responses strictly (CRLF only,
//! RFC 2449 §4 line limits) and streams un-stuffed message content as
//! events. Each side is tested against the other in memory.
//!
//! ```text
//!   socket bytes ──► handle_input ─┐
//!                                  ▼
//!                ┌──────── ServerSession ─────────┐
//!                │ lines ─► Command ─► state rules │──► take_output ──► socket
//!                └──────────────┬──────────────────┘
//!                   poll_event  │  ▲ login_succeeded / login_failed,
//!                               ▼  │ retrieve_ok / retrieve_failed,
//!                         driver (store, TLS)      update_finished, tls_established
//! ```
//!
//! # Driving a session
//!
//! The poll order is documented on [`ServerSession`]. A complete driver loop,
//! with an in-memory "socket":
//!
//! ```
//! use mailroom_pop3_proto::{
//!     ByteStuffer, Credential, Event, LoginFailure, MessageEntry, ServerConfig, ServerSession,
//!     TopFilter,
//! };
//!
//! let message: &[u8] = b"Subject: hi\r\n\r\n.a line with a dot\r\n";
//! let config = ServerConfig {
//!     plaintext_login_allowed: true, // say, a loopback connection
//!     ..ServerConfig::default()
//! };
//! let mut session = ServerSession::new(config);
//! let mut wire = session.take_output(); // the greeting
//! let reads: [&[u8]; 2] = [b"USER alice\r\nPASS secret\r\n", b"RETR 1\r\nDELE 1\r\nQUIT\r\n"];
//! for read in reads {
//!     session.handle_input(read);
//!     while let Some(event) = session.poll_event() {
//!         match event {
//!             Event::Login { user, credential } => {
//!                 if user == "alice" && credential == Credential::Password("secret".into()) {
//!                     let listing = vec![MessageEntry { uid: "m1".into(), size: message.len() as u64 }];
//!                     session.login_succeeded(listing);
//!                 } else {
//!                     session.login_failed(LoginFailure::BadCredentials);
//!                 }
//!             }
//!             Event::Retrieve { index: _, top_lines } => {
//!                 session.retrieve_ok();
//!                 wire.extend(session.take_output()); // "+OK n octets" first
//!                 let mut stuffer = ByteStuffer::new();
//!                 let mut top = top_lines.map(TopFilter::new);
//!                 for chunk in message.chunks(8) {
//!                     let chunk = match &mut top {
//!                         Some(filter) => filter.push(chunk),
//!                         None => chunk,
//!                     };
//!                     stuffer.push(chunk, &mut wire);
//!                 }
//!                 stuffer.finish(&mut wire);
//!             }
//!             Event::Quit { deletions } => {
//!                 assert_eq!(deletions, vec![0]); // remove them durably, then:
//!                 session.update_finished(true);
//!             }
//!             Event::StartTls => session.tls_established(), // after the handshake
//!         }
//!     }
//!     wire.extend(session.take_output());
//!     if session.is_closed() {
//!         break;
//!     }
//! }
//! let wire = String::from_utf8(wire).unwrap();
//! assert!(wire.contains("+OK 35 octets\r\nSubject: hi\r\n\r\n..a line with a dot\r\n.\r\n"));
//! assert!(wire.ends_with("+OK message 1 deleted\r\n+OK 1 messages deleted\r\n"));
//! ```

mod apop;
pub mod client;
mod command;
#[doc(hidden)]
pub mod fuzzing;
mod line;
mod maildrop;
mod response;
mod sasl;
mod session;
mod stuffing;
mod top;

pub use apop::{apop_digest, apop_verify};
pub use client::{
    Capabilities, ClientConfig, ClientError, ClientEvent, ClientSession, ClientState, CommandKind,
    ListEntry, SendError, UidEntry,
};
pub use command::{Command, CommandError, Secret};
pub use maildrop::MessageEntry;
pub use response::{RespCode, Response, Status};
pub use session::{Credential, Event, LoginFailure, ServerConfig, ServerSession};
pub use stuffing::ByteStuffer;
pub use top::TopFilter;
