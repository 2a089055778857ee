//! The inbound agent: SMTP and POP3 listeners and the thin tokio drivers that
//! connect sockets to the pure session state machines of `mailroom-smtp-proto`
//! and `mailroom-pop3-proto`, plus the routing policy that decides where a
//! recipient's mail goes.
//!
//! This crate owns no protocol logic (that is in the `*-proto` crates) and no
//! storage format (that is behind the `mailroom-store` traits). It owns:
//! sockets, timers, connection limits, graceful shutdown, and the decisions a
//! session asks for (is this recipient local? store this message now).
//!
//! ```text
//!  TcpListener ─► limits ─► smtp::session ─► Router ─► MailStore::deliver (fsync) ─► 250
//!  TcpListener ─► limits ─► pop3::session ─► UserDb + MailStore::open_maildrop ─► stream RETR
//! ```
//!
//! [`run`] takes already-bound listeners and a [`Shutdown`]: the binary binds
//! (and may drop privileges) first; tests bind port 0.

mod accept;
mod auth;
pub mod config;
mod guard;
pub mod ids;
mod io;
mod limits;
mod local;
pub mod pop3;
mod router;
mod sasl;
mod shutdown;
pub mod smtp;
mod stream;
pub mod time;
pub mod tls;
mod trace;

use std::sync::{Arc, RwLock};

use mailroom_store::{MailStore, QueueStore, UserDb};
use tokio::net::TcpListener;

pub use config::{ListenerKind, ServerConfig};
pub use local::LocalFailure;
pub use shutdown::{Shutdown, ShutdownTrigger};

/// Everything a session needs, shared by all listeners.
pub struct Context {
    /// The server's configuration, swapped whole by [`Context::reconfigure`]
    /// (SIGHUP). A std lock held only to clone or replace the `Arc`: each
    /// session takes one snapshot when it starts and keeps it to the end.
    config: RwLock<Arc<ServerConfig>>,
    /// Maildrops: where local mail is delivered and POP3 reads it.
    pub store: Arc<dyn MailStore>,
    /// Users and aliases.
    pub users: Arc<dyn UserDb>,
    /// TLS certificate and key; `None` disables STARTTLS, STLS and the
    /// implicit-TLS listeners.
    pub tls: Option<Arc<tls::TlsHandle>>,
    /// The outbound queue; `None` refuses relaying altogether.
    pub queue: Option<Arc<dyn QueueStore>>,
    /// Woken after each enqueue so the MTA tries new mail at once.
    pub queue_notify: Arc<tokio::sync::Notify>,
    /// SPF/DKIM/DMARC verification of mail arriving on the SMTP port from
    /// outside ([`ServerConfig::mail_auth_exempt`]); `None` turns it off.
    /// Swapped with the configuration.
    verifier: RwLock<Option<Arc<mailroom_mailauth::Verifier>>>,
    limits: limits::ConnectionLimits,
    guard: guard::LoginGuard,
    /// Whether any user has a CRAM-MD5 secret, re-checked every 30 s.
    cram_md5: std::sync::Mutex<Option<(std::time::Instant, bool)>>,
}

impl Context {
    /// Builds the shared context from the configuration and store handles.
    pub fn new(
        config: ServerConfig,
        store: Arc<dyn MailStore>,
        users: Arc<dyn UserDb>,
        tls: Option<Arc<tls::TlsHandle>>,
        queue: Option<Arc<dyn QueueStore>>,
        queue_notify: Arc<tokio::sync::Notify>,
        verifier: Option<Arc<mailroom_mailauth::Verifier>>,
    ) -> Arc<Self> {
        let limits =
            limits::ConnectionLimits::new(config.max_connections, config.max_connections_per_ip);
        let guard = guard::LoginGuard::new(config.login_failure_delay);
        Arc::new(Context {
            config: RwLock::new(Arc::new(config)),
            store,
            users,
            tls,
            queue,
            queue_notify,
            verifier: RwLock::new(verifier),
            limits,
            guard,
            cram_md5: std::sync::Mutex::new(None),
        })
    }
}

impl Context {
    /// The configuration now in force. Sessions take this once, at their
    /// start, so a reload never changes the rules in the middle of one.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The mail-authentication verifier now in force, if any.
    pub fn verifier(&self) -> Option<Arc<mailroom_mailauth::Verifier>> {
        self.verifier
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Puts a new configuration (and verifier) in force for sessions that
    /// start from now on; the connection caps and the login delay change at
    /// once. Sessions already running keep the snapshot they took.
    pub fn reconfigure(
        &self,
        config: ServerConfig,
        verifier: Option<Arc<mailroom_mailauth::Verifier>>,
    ) {
        self.limits
            .set(config.max_connections, config.max_connections_per_ip);
        self.guard.set_base_delay(config.login_failure_delay);
        *self.verifier.write().unwrap_or_else(|p| p.into_inner()) = verifier;
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
    }

    /// True when some user opted in to CRAM-MD5 (a stored shared secret),
    /// so offering the mechanism can succeed. Cached for 30 seconds.
    pub(crate) async fn cram_md5_offered(&self) -> bool {
        const FRESH: std::time::Duration = std::time::Duration::from_secs(30);
        if let Some((at, known)) = *self.cram_md5.lock().unwrap_or_else(|p| p.into_inner())
            && at.elapsed() < FRESH
        {
            return known;
        }
        let any = match self.users.list().await {
            Ok(users) => users.iter().any(|u| u.shared_secret.is_some()),
            Err(_) => false,
        };
        *self.cram_md5.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((std::time::Instant::now(), any));
        any
    }
}

/// One bound listener and the service it carries.
pub struct Listener {
    /// Which service this socket speaks.
    pub kind: ListenerKind,
    /// The bound socket.
    pub socket: TcpListener,
}

/// Serves every listener until `shutdown` fires, then waits for sessions to
/// finish (each is told to stop: those past DATA finish their commit first).
pub async fn run(ctx: Arc<Context>, listeners: Vec<Listener>, shutdown: Shutdown) {
    let mut tasks = tokio::task::JoinSet::new();
    for listener in listeners {
        let ctx = ctx.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            match listener.kind {
                ListenerKind::Pop3 | ListenerKind::Pop3s => {
                    pop3::serve(ctx, listener.socket, listener.kind, shutdown).await
                }
                _ => smtp::serve(ctx, listener.socket, listener.kind, shutdown).await,
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}
