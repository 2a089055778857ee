//! The SMTP driver: accepts connections, runs one [`ServerSession`] per
//! connection, and answers the decisions it asks for (recipient routing,
//! durable delivery). It makes no protocol decisions of its own.

use std::net::SocketAddr;
use std::sync::Arc;

use mailroom_mailauth::Decision;
use mailroom_smtp_proto::{
    BodyType, EnhancedCode, Envelope, Event, ForwardPath, Notify, RcptParams, Reply, Ret,
    ServerConfig as SessionConfig, ServerSession, Timeout, codes, message,
};
use mailroom_store::{IncomingMessage, QueueEntry, QueuedRecipient};
use tokio::net::{TcpListener, TcpStream};

use crate::accept::accept_loop;
use crate::auth::{self, Proof, Verdict};
use crate::config::{ListenerKind, ServerConfig};
use crate::io::Input;
use crate::limits::ConnectionSlot;
use crate::router::{Route, Router, store_reply, verify};
use crate::sasl::{self, Exchange, Step};
use crate::stream::Stream;
use crate::{Context, Shutdown, ids, time, trace};

/// Accepts SMTP connections on `listener` until `shutdown` fires.
pub async fn serve(
    ctx: Arc<Context>,
    listener: TcpListener,
    kind: ListenerKind,
    shutdown: Shutdown,
) {
    let refusal = |hostname: &str| {
        let mut refusal = Vec::new();
        codes::too_many_connections(hostname).write_to(&mut refusal);
        refusal
    };
    accept_loop(ctx, listener, kind, shutdown, refusal, session).await;
}

/// Per-session state the driver keeps beside the protocol state machine.
struct Driver {
    ctx: Arc<Context>,
    /// The configuration this session started with: a reload (SIGHUP)
    /// applies to the next session, never halfway through this one.
    config: Arc<ServerConfig>,
    /// Likewise the mail-authentication verifier.
    verifier: Option<Arc<mailroom_mailauth::Verifier>>,
    peer: SocketAddr,
    /// Local users of the recipients accepted so far in this transaction.
    targets: Vec<String>,
    /// Remote recipients accepted so far, to be queued.
    remote: Vec<QueuedRecipient>,
    /// The SASL exchange in progress, if any.
    sasl: Option<Exchange>,
    /// Set when the session asked for STARTTLS: the driver upgrades after
    /// flushing the 220.
    start_tls: bool,
    /// The listener's service: mail authentication runs on the SMTP port.
    kind: ListenerKind,
}

async fn session(
    ctx: Arc<Context>,
    stream: TcpStream,
    peer: SocketAddr,
    kind: ListenerKind,
    mut shutdown: Shutdown,
    _slot: ConnectionSlot,
) -> std::io::Result<()> {
    let settings = ctx.config();
    let io_timeout = settings.command_timeout;
    let mut stream = Stream::Plain(stream);
    if kind == ListenerKind::Smtps {
        // RFC 8314 §3: implicit TLS starts with the handshake.
        let Some(tls) = &ctx.tls else { return Ok(()) };
        Box::pin(stream.upgrade(tls.acceptor(), io_timeout)).await?;
    }
    let cram_md5 = ctx.cram_md5_offered().await;
    let config = session_config(&ctx, &settings, kind, peer, cram_md5);
    let mut session = ServerSession::new(config);
    let mut driver = Driver {
        ctx: ctx.clone(),
        config: settings.clone(),
        verifier: ctx.verifier(),
        peer,
        targets: Vec::new(),
        remote: Vec::new(),
        sasl: None,
        start_tls: false,
        kind,
    };
    tracing::debug!("connected");
    // RFC 5321 §4.5.3.2.7: the command timeout bounds the wait for a whole
    // command, not for each read: a client trickling a byte at a time
    // (slowloris) must not keep its slot forever. The clock starts when the
    // server begins to wait and restarts when a reply goes out.
    let mut command_deadline: Option<tokio::time::Instant> = None;
    // The same for message data, with a minimum rate: each block must come
    // within data_timeout (§4.5.3.2.5), and the whole message may take
    // only as long as its size at min_data_rate buys (a client trickling a
    // byte per block timeout would otherwise hold its slot for days).
    let mut data_deadline: Option<tokio::time::Instant> = None;
    loop {
        while let Some(event) = session.poll_event() {
            // Boxed: the futures of a delivery, AUTH or a TLS handshake
            // are large, and live only while they run; unboxed they would
            // size every connection's task, idle ones included.
            Box::pin(driver.handle(&mut session, event)).await;
            if driver.start_tls {
                break;
            }
        }
        let out = session.take_output();
        if !out.is_empty() {
            count_replies(&out);
            stream.write_all(&out, io_timeout).await?;
            command_deadline = None;
            data_deadline = None;
        }
        if driver.start_tls {
            driver.start_tls = false;
            let Some(tls) = &ctx.tls else { break };
            // RFC 3207 §4.2: the session already dropped anything pipelined
            // after STARTTLS; the handshake starts on a clean stream.
            if let Err(err) = Box::pin(stream.upgrade(tls.acceptor(), io_timeout)).await {
                tracing::info!(error = %err, "TLS handshake failed");
                break;
            }
            tracing::debug!(
                tls = stream.tls_description().as_deref().unwrap_or(""),
                "STARTTLS done"
            );
            session.tls_established();
            continue;
        }
        if session.is_closed() {
            break;
        }
        // A stop request lets a message already in DATA finish; everyone else
        // gets 421 now.
        if shutdown.is_triggered() && !session.in_data() {
            session.shutdown();
            continue;
        }
        let timeout = match session.next_timeout() {
            Timeout::Command => {
                let now = tokio::time::Instant::now();
                let deadline = *command_deadline.get_or_insert(now + settings.command_timeout);
                deadline.saturating_duration_since(now)
            }
            Timeout::DataBlock if settings.min_data_rate == 0 => settings.data_timeout,
            Timeout::DataBlock => {
                let now = tokio::time::Instant::now();
                let deadline = *data_deadline.get_or_insert(now + settings.data_timeout);
                deadline.saturating_duration_since(now)
            }
        };
        let input = tokio::select! {
            input = stream.read_some(timeout) => input?,
            _ = shutdown.triggered(), if !session.in_data() => continue,
        };
        match input {
            Input::Data(bytes) => {
                if let Some(deadline) = data_deadline.as_mut() {
                    let now = tokio::time::Instant::now();
                    let earned = std::time::Duration::from_secs_f64(
                        bytes.len() as f64 / settings.min_data_rate.max(1) as f64,
                    );
                    *deadline = (*deadline + earned).min(now + settings.data_timeout);
                }
                session.handle_input(&bytes);
            }
            Input::Closed => break,
            Input::TimedOut => {
                tracing::info!("timeout");
                session.timed_out();
            }
        }
    }
    stream.close().await;
    tracing::debug!("disconnected");
    Ok(())
}

fn session_config(
    ctx: &Context,
    c: &ServerConfig,
    kind: ListenerKind,
    peer: SocketAddr,
    cram_md5: bool,
) -> SessionConfig {
    let tls = ctx.tls.is_some();
    SessionConfig {
        starttls: tls && kind != ListenerKind::Smtps,
        tls_active: kind == ListenerKind::Smtps,
        // CRAM-MD5 only when some user opted in to its stored secret:
        // clients pick the strongest mechanism offered, and it would fail
        // for everyone else (curl does exactly that).
        auth_mechanisms: sasl::MECHANISMS
            .iter()
            .filter(|m| cram_md5 || **m != "CRAM-MD5")
            .map(|m| m.to_string())
            .collect(),
        // RFC 4954 §4 / DESIGN.md: AUTH only over TLS, except on
        // plaintext_auth_networks (loopback by default).
        auth_without_tls: c.plaintext_auth_allowed(peer.ip()),
        hostname: c.hostname.clone(),
        max_message_size: c.max_message_size,
        max_recipients: c.max_recipients,
        max_errors: c.max_errors,
        vrfy: c.vrfy,
        expn: c.expn,
        require_auth: matches!(kind, ListenerKind::Submission | ListenerKind::Smtps),
        ..SessionConfig::default()
    }
}

impl Driver {
    async fn handle(&mut self, session: &mut ServerSession, event: Event) {
        let router = Router {
            config: &self.config,
            users: self.ctx.users.as_ref(),
        };
        match event {
            Event::MailFrom { reverse_path, .. } => {
                self.targets.clear();
                self.remote.clear();
                match session.authenticated() {
                    Some(user)
                        if !self
                            .sender_allowed(&router, user, reverse_path.as_ref())
                            .await =>
                    {
                        tracing::info!(user, from = %reverse_path.map(|a| a.to_string()).unwrap_or_default(), "sender not owned by the authenticated user");
                        session.respond(codes::sender_not_owned());
                    }
                    _ => session.accept(),
                }
            }
            Event::RcptTo { recipient } => {
                match router.route(&recipient.path, self.may_relay(session)).await {
                    Ok(Route::Local(users, remote)) => {
                        let wants_success = recipient
                            .params
                            .notify
                            .as_ref()
                            .is_some_and(|n| n.contains(&Notify::Success));
                        if wants_success && !users.is_empty() && self.ctx.queue.is_some() {
                            // RFC 3461 §5.2.2: NOTIFY=SUCCESS asks for a
                            // "delivered" DSN, which the queue's local
                            // delivery sends: the recipient goes through it
                            // (which routes an alias's members again).
                            let address = match &recipient.path {
                                ForwardPath::Mailbox(address) => address.to_string(),
                                ForwardPath::Postmaster => {
                                    format!("postmaster@{}", self.config.hostname)
                                }
                            };
                            self.remote
                                .push(queued_recipient(address, &recipient.params));
                        } else {
                            self.targets.extend(users);
                            // An alias's remote members keep the original DSN
                            // parameters of the recipient that named the alias.
                            for address in remote {
                                self.remote
                                    .push(queued_recipient(address.to_string(), &recipient.params));
                            }
                        }
                        session.accept();
                    }
                    Ok(Route::Relay(address)) => {
                        if self.ctx.queue.is_none() {
                            session.respond(codes::relay_denied());
                        } else {
                            self.remote
                                .push(queued_recipient(address.to_string(), &recipient.params));
                            session.accept();
                        }
                    }
                    Err(reply) => {
                        tracing::info!(rcpt = %display_path(&recipient.path), code = reply.code, "recipient refused");
                        session.respond(reply);
                    }
                }
            }
            Event::Vrfy { argument } => session.respond(verify(&router, &argument).await),
            Event::Expn { argument } => session.respond(self.expand(&router, &argument).await),
            Event::Message { envelope, data } => {
                let reply = self.accept_message(session, envelope, data).await;
                self.targets.clear();
                self.remote.clear();
                session.respond(reply);
            }
            Event::Auth {
                mechanism,
                initial_response,
            } => {
                let nonce = ids::new_id();
                match Exchange::start(
                    &mechanism,
                    initial_response.as_deref(),
                    &nonce,
                    &self.config.hostname,
                ) {
                    Some((exchange, step)) => {
                        self.sasl = Some(exchange);
                        self.auth_step(session, step).await;
                    }
                    None => session.respond(codes::auth_mechanism_unsupported()),
                }
            }
            Event::AuthResponse { line } => {
                let step = match self.sasl.as_mut() {
                    Some(exchange) => exchange.step(&line),
                    None => Step::Malformed,
                };
                self.auth_step(session, step).await;
            }
            Event::StartTls => self.start_tls = true,
            Event::Helo { .. } | Event::Quit => {}
        }
    }

    async fn auth_step(&mut self, session: &mut ServerSession, step: Step) {
        match step {
            Step::Challenge(challenge) => session.auth_challenge(&challenge),
            Step::Malformed => {
                self.sasl = None;
                session.respond(codes::auth_bad_base64());
            }
            Step::Refused => {
                self.sasl = None;
                session.respond(codes::auth_failed());
            }
            Step::Done { user, credential } => {
                self.sasl = None;
                match auth::verify(&self.ctx, self.peer.ip(), &user, Proof::Sasl(credential)).await
                {
                    Verdict::Accepted(name) => {
                        tracing::info!(user = %name, "authenticated");
                        session.auth_succeeded(&name);
                    }
                    Verdict::Rejected | Verdict::Blocked => session.respond(codes::auth_failed()),
                    Verdict::Unavailable => session.respond(codes::auth_temporary_failure()),
                }
            }
        }
    }

    /// RFC 6409 §6.1 lets the submission server check that the sender is
    /// the authenticated user's: a local address that routes to that user.
    /// The null sender is allowed (bounces from the user's own tools).
    async fn sender_allowed(
        &self,
        router: &Router<'_>,
        user: &str,
        sender: Option<&mailroom_core::Address>,
    ) -> bool {
        let Some(sender) = sender else { return true };
        if !self.config.is_local_domain(sender.domain()) {
            return false;
        }
        if sender.local_part().user_key() == user {
            return true;
        }
        matches!(router.route_local(sender.local_part()).await, Ok(Route::Local(users, _)) if users.iter().any(|u| u == user))
    }

    async fn expand(&self, router: &Router<'_>, argument: &str) -> Reply {
        let name = argument
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>');
        let local = name.split('@').next().unwrap_or(name);
        match mailroom_core::LocalPart::parse(local, true) {
            Ok(local) => match router.route_local(&local).await {
                Ok(Route::Local(users, remote)) => {
                    let host = &self.config.hostname;
                    let mut list: Vec<String> =
                        users.iter().map(|u| format!("<{u}@{host}>")).collect();
                    list.extend(remote.iter().map(|a| format!("<{a}>")));
                    codes::expn_list(list)
                }
                Ok(Route::Relay(_)) => codes::user_unknown(),
                Err(reply) => reply,
            },
            Err(_) => codes::user_unknown(),
        }
    }

    /// May this session's recipients be in other domains?
    fn may_relay(&self, session: &ServerSession) -> bool {
        let ip = self.peer.ip();
        session.authenticated().is_some()
            || self
                .config
                .trusted_networks
                .iter()
                .any(|net| net.contains(&ip))
    }

    /// Stores an accepted message durably: queued for its remote recipients,
    /// delivered into its local recipients' maildrops. The reply is made
    /// only after both returned, i.e. after fsync.
    async fn accept_message(
        &self,
        session: &ServerSession,
        envelope: Envelope,
        mut data: Vec<u8>,
    ) -> Reply {
        let config = &self.config;
        // BDAT (RFC 3030) can carry a message whose last line has no CRLF;
        // DATA cannot. Every message is stored with one, so that its size
        // is what POP3 sends (RFC 1939 §3 ends every line of a response
        // with CRLF) and relaying it with DATA changes nothing. DKIM's body
        // canonicalizations add that CRLF too (RFC 6376 §3.4.3, §3.4.4).
        if !data.is_empty() && !data.ends_with(b"\r\n") {
            data.extend_from_slice(b"\r\n");
        }
        let hops = message::received_header_count(&data);
        // RFC 5321 §6.3: more hops than any real path has is a loop.
        if hops > config.max_hops {
            tracing::warn!(hops, "mail loop suspected; message refused");
            return codes::mail_loop();
        }
        let from = envelope
            .reverse_path
            .as_ref()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let (auth_header, data) = match self.authenticate(session, &envelope, &from, data).await {
            Ok(checked) => checked,
            Err(reply) => return reply,
        };
        let id = ids::new_id();
        let single = match envelope.recipients.as_slice() {
            [only] => match &only.path {
                ForwardPath::Mailbox(address) => Some(address),
                ForwardPath::Postmaster => None,
            },
            _ => None,
        };
        let date = time::rfc5322_now();
        let protocol = protocol_name(&envelope, session);
        let mut received = Vec::with_capacity(300);
        trace::received(
            &trace::ReceivedInfo {
                helo: &envelope.helo,
                peer: self.peer.ip(),
                hostname: &config.hostname,
                protocol: &protocol,
                id: &id,
                single_recipient: single,
                date: &date,
            },
            &mut received,
        );
        received.extend_from_slice(&auth_header);
        // RFC 6409 §8.2, §8.3: a submission server may add a missing Date
        // and Message-ID; only for authenticated clients, whose mail it is.
        if session.authenticated().is_some() {
            let (needs_date, needs_id) = mailroom_mime::missing_date_and_message_id(&data);
            if needs_date {
                received.extend_from_slice(format!("Date: {date}\r\n").as_bytes());
            }
            if needs_id {
                received.extend_from_slice(
                    format!("Message-ID: <{id}@{}>\r\n", config.hostname).as_bytes(),
                );
            }
        }
        let size = data.len();
        let body = Arc::new(data);

        if !self.remote.is_empty() {
            let Some(queue) = &self.ctx.queue else {
                return codes::local_error();
            };
            let entry = QueueEntry {
                id: id.clone(),
                sender: envelope.reverse_path.as_ref().map(|a| a.to_string()),
                created: time::unix_now(),
                envid: envelope.mail_params.envid.clone(),
                ret: envelope.mail_params.ret.map(|r| match r {
                    Ret::Full => "FULL".to_string(),
                    Ret::Headers => "HDRS".to_string(),
                }),
                body_8bit: envelope.mail_params.body == BodyType::EightBitMime,
                smtputf8: envelope.mail_params.smtputf8,
                size: (received.len() + size) as u64,
                held: false,
                recipients: self.remote.clone(),
            };
            let message = IncomingMessage {
                prefix: received.clone(),
                body: body.clone(),
            };
            if let Err(err) = queue.enqueue(&entry, &message).await {
                tracing::warn!(queue_id = %id, from = %from, size, error = %err, "message not queued");
                return store_reply(err);
            }
            tracing::info!(queue_id = %id, from = %from, rcpts = entry.recipients.len(), size, result = "queued", "message accepted for relay");
            self.ctx.queue_notify.notify_one();
        }

        if !self.targets.is_empty() {
            let mut prefix = Vec::with_capacity(received.len() + 80);
            trace::return_path(envelope.reverse_path.as_ref(), &mut prefix);
            prefix.extend_from_slice(&received);
            let message = IncomingMessage { prefix, body };
            let mut users = self.targets.clone();
            users.sort();
            users.dedup();
            if let Err(err) = self.ctx.store.deliver(&users, &message).await {
                tracing::warn!(queue_id = %id, from = %from, size, error = %err, "message not delivered");
                return store_reply(err);
            }
            tracing::info!(queue_id = %id, from = %from, users = users.len(), size, result = "delivered", "message accepted");
        }
        metrics::counter!("mailroom_messages_accepted_total").increment(1);
        metrics::counter!("mailroom_messages_accepted_bytes_total").increment(size as u64);
        codes::message_accepted(&id)
    }
}

impl Driver {
    /// SPF, DKIM and DMARC for mail from the internet: on the SMTP port,
    /// not authenticated, not from a trusted or exempt network. Returns
    /// the `Authentication-Results` field (RFC 8601) to add and the
    /// message without fields claiming to be our verdicts (§5: removed
    /// from every message, whoever sent it), or the reply refusing it
    /// (DMARC reject, SPF fail by policy, DNS failure).
    async fn authenticate(
        &self,
        session: &ServerSession,
        envelope: &Envelope,
        from: &str,
        data: Vec<u8>,
    ) -> Result<(Vec<u8>, Vec<u8>), Reply> {
        let header = match &self.verifier {
            Some(verifier)
                if self.kind == ListenerKind::Smtp
                    && session.authenticated().is_none()
                    && !self.config.mail_auth_exempt(self.peer.ip()) =>
            {
                // Verified as received: a signature covers the original.
                let verdict = verifier
                    .verify(mailroom_mailauth::Inbound {
                        ip: self.peer.ip(),
                        helo: &envelope.helo,
                        mail_from: from,
                        message: &data,
                    })
                    .await;
                let (outcome, refusal) = match &verdict.decision {
                    Decision::Accept => ("accept", None),
                    Decision::Quarantine => ("quarantine", None),
                    Decision::Reject(refusal) => ("reject", Some(refusal)),
                    Decision::TempFail(refusal) => ("tempfail", Some(refusal)),
                };
                metrics::counter!("mailroom_mail_auth_total", "decision" => outcome).increment(1);
                tracing::info!(from = %from, result = %verdict.summary, decision = outcome, "mail authentication");
                if let Some(refusal) = refusal {
                    let (class, subject, detail) = refusal.enhanced;
                    return Err(Reply::new(
                        refusal.code,
                        Some(EnhancedCode(class, subject, detail)),
                        refusal.text.clone(),
                    ));
                }
                verdict.header
            }
            _ => Vec::new(),
        };
        let data = match mailroom_mailauth::results::strip_own(&data, &self.config.hostname) {
            Some(stripped) => {
                tracing::info!(from = %from, "removed an Authentication-Results field naming this host");
                stripped
            }
            None => data,
        };
        Ok((header, data))
    }
}

/// Counts the replies in `out` by class (`2xx`, `3xx`, `4xx`, `5xx`):
/// rejections an operator alerts on, whether the session or the driver
/// decided them. Only the last line of a multi-line reply counts.
fn count_replies(out: &[u8]) {
    for line in out.split(|&b| b == b'\n') {
        if line.len() >= 4 && line[3] == b' ' {
            let class = match line[0] {
                b'2' => "2xx",
                b'3' => "3xx",
                b'4' => "4xx",
                b'5' => "5xx",
                _ => continue,
            };
            metrics::counter!("mailroom_smtp_replies_total", "class" => class).increment(1);
        }
    }
}

/// The queue's record of one RCPT, keeping its DSN parameters (RFC 3461).
fn queued_recipient(address: String, params: &RcptParams) -> QueuedRecipient {
    QueuedRecipient {
        orcpt: params.orcpt.clone(),
        notify: params.notify.as_ref().map(|list| {
            list.iter()
                .map(|n| match n {
                    Notify::Never => "NEVER",
                    Notify::Success => "SUCCESS",
                    Notify::Failure => "FAILURE",
                    Notify::Delay => "DELAY",
                })
                .collect::<Vec<_>>()
                .join(",")
        }),
        ..QueuedRecipient::pending(address, time::unix_now())
    }
}

/// RFC 3848 / RFC 6531 §3.7.3 protocol names for the `with` clause.
fn protocol_name(envelope: &Envelope, session: &ServerSession) -> String {
    let mut name = String::new();
    if envelope.mail_params.smtputf8 {
        name.push_str("UTF8");
    }
    name.push_str(if envelope.esmtp { "ESMTP" } else { "SMTP" });
    if envelope.esmtp && session.is_tls() {
        name.push('S');
    }
    if envelope.esmtp && session.authenticated().is_some() {
        name.push('A');
    }
    if name.starts_with("UTF8") {
        name = name.replacen("UTF8ESMTP", "UTF8SMTP", 1);
    }
    name
}

fn display_path(path: &ForwardPath) -> String {
    match path {
        ForwardPath::Postmaster => "Postmaster".to_string(),
        ForwardPath::Mailbox(address) => address.to_string(),
    }
}
