//! Test support: a scripted SMTP sink, a recording `LocalDelivery`, and a
//! harness running an `Mta` over a `MemoryQueue`.

#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailroom_mta::{LocalDelivery, LocalDeliveryError, Mta, MtaConfig, RetryPolicy};
use mailroom_store::{IncomingMessage, QueueEntry, QueueStore, QueuedRecipient, RecipientState};
use mailroom_testkit::MemoryQueue;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const MESSAGE: &[u8] = b"From: Alice <alice@origin.example>\r\n\
To: Bob <bob@example.net>\r\n\
Subject: test message\r\n\
Message-ID: <test-1@origin.example>\r\n\
\r\n\
Hello Bob.\r\n\
.leading dot\r\n";

/// How a sink behaves.
#[derive(Clone, Default)]
pub struct SinkConfig {
    /// Offer STARTTLS with this server configuration.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Offer DSN.
    pub dsn: bool,
    /// Replies to RCPT for specific addresses (default `250 2.1.5 OK`).
    pub rcpt_replies: HashMap<String, String>,
    /// Replies to the end of data, used up in order; then `250 2.0.0 OK`.
    pub data_replies: Vec<String>,
}

/// A message the sink accepted.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: Vec<u8>,
    pub tls: bool,
}

/// A scripted SMTP server on 127.0.0.1.
pub struct Sink {
    pub addr: SocketAddr,
    state: Arc<SinkState>,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct SinkState {
    connections: AtomicUsize,
    open: AtomicUsize,
    max_open: AtomicUsize,
    mail_commands: AtomicUsize,
    received: Mutex<Vec<Received>>,
    data_replies: Mutex<VecDeque<String>>,
}

impl Sink {
    pub async fn start(config: SinkConfig) -> Sink {
        Sink::start_on("127.0.0.1:0", config).await
    }

    pub async fn start_on(bind: &str, config: SinkConfig) -> Sink {
        let listener = TcpListener::bind(bind).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(SinkState::default());
        state
            .data_replies
            .lock()
            .unwrap()
            .extend(config.data_replies.iter().cloned());
        let config = Arc::new(config);
        let task = {
            let state = state.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    state.connections.fetch_add(1, Ordering::SeqCst);
                    let open = state.open.fetch_add(1, Ordering::SeqCst) + 1;
                    state.max_open.fetch_max(open, Ordering::SeqCst);
                    let (state, config) = (state.clone(), config.clone());
                    tokio::spawn(async move {
                        let _ = session(stream, &state, &config).await;
                        state.open.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            })
        };
        Sink { addr, state, task }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// The most connections open at once.
    pub fn max_open(&self) -> usize {
        self.state.max_open.load(Ordering::SeqCst)
    }

    pub fn mail_commands(&self) -> usize {
        self.state.mail_commands.load(Ordering::SeqCst)
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

async fn session(stream: TcpStream, state: &SinkState, config: &SinkConfig) -> std::io::Result<()> {
    let mut reader = BufReader::new(Box::new(stream) as Box<dyn Io>);
    reader
        .get_mut()
        .write_all(b"220 sink.test ESMTP\r\n")
        .await?;
    let mut tls = false;
    let mut from = String::new();
    let mut to: Vec<String> = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        let upper = text.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            let mut r = String::from("250-sink.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n");
            if config.dsn {
                r.push_str("250-DSN\r\n");
            }
            if config.tls.is_some() && !tls {
                r.push_str("250-STARTTLS\r\n");
            }
            r.push_str("250 SIZE 10000000\r\n");
            r
        } else if upper.starts_with("HELO") {
            "250 sink.test\r\n".into()
        } else if upper == "STARTTLS" && config.tls.is_some() && !tls {
            reader
                .get_mut()
                .write_all(b"220 2.0.0 go ahead\r\n")
                .await?;
            let acceptor = tokio_rustls::TlsAcceptor::from(config.tls.clone().unwrap());
            let inner = reader.into_inner();
            let stream = acceptor.accept(inner).await?;
            reader = BufReader::new(Box::new(stream) as Box<dyn Io>);
            tls = true;
            from.clear();
            to.clear();
            continue;
        } else if upper.starts_with("MAIL FROM:") {
            state.mail_commands.fetch_add(1, Ordering::SeqCst);
            from = angle(&text);
            to.clear();
            "250 2.1.0 OK\r\n".into()
        } else if upper.starts_with("RCPT TO:") {
            let address = angle(&text);
            match config.rcpt_replies.get(&address) {
                Some(reply) => format!("{reply}\r\n"),
                None => {
                    to.push(address);
                    "250 2.1.5 OK\r\n".into()
                }
            }
        } else if upper == "DATA" {
            if to.is_empty() {
                "554 5.5.1 no valid recipients\r\n".into()
            } else {
                reader.get_mut().write_all(b"354 go ahead\r\n").await?;
                let mut data = Vec::new();
                loop {
                    line.clear();
                    if reader.read_until(b'\n', &mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == b".\r\n" {
                        break;
                    }
                    let unstuffed = line.strip_prefix(b".").unwrap_or(&line);
                    data.extend_from_slice(unstuffed);
                }
                let scripted = state.data_replies.lock().unwrap().pop_front();
                let reply = scripted.unwrap_or_else(|| "250 2.0.0 OK queued".into());
                if reply.starts_with('2') {
                    state.received.lock().unwrap().push(Received {
                        from: from.clone(),
                        to: std::mem::take(&mut to),
                        data,
                        tls,
                    });
                }
                format!("{reply}\r\n")
            }
        } else if upper == "RSET" {
            from.clear();
            to.clear();
            "250 2.0.0 OK\r\n".into()
        } else if upper == "NOOP" {
            "250 2.0.0 OK\r\n".into()
        } else if upper == "QUIT" {
            reader.get_mut().write_all(b"221 2.0.0 bye\r\n").await?;
            return Ok(());
        } else {
            "500 5.5.2 unknown command\r\n".into()
        };
        reader.get_mut().write_all(reply.as_bytes()).await?;
    }
}

/// The address inside `<…>` of a MAIL or RCPT line.
fn angle(line: &str) -> String {
    let start = line.find('<').map_or(0, |i| i + 1);
    let end = line[start..].find('>').map_or(line.len(), |i| start + i);
    line[start..end].to_string()
}

/// A self-signed server configuration for the sink's STARTTLS.
pub fn sink_tls() -> Arc<rustls::ServerConfig> {
    let key = rcgen::generate_simple_self_signed(vec!["mx.example.net".to_string()]).unwrap();
    let cert = key.cert.der().clone();
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], private)
        .unwrap();
    Arc::new(config)
}

/// Local delivery that records what it got, for the domains given.
#[derive(Default)]
pub struct TestLocal {
    pub domains: Vec<String>,
    pub delivered: Mutex<Vec<(String, Vec<u8>)>>,
}

impl TestLocal {
    pub fn new(domains: &[&str]) -> Arc<TestLocal> {
        Arc::new(TestLocal {
            domains: domains.iter().map(|d| d.to_string()).collect(),
            delivered: Mutex::new(Vec::new()),
        })
    }

    pub fn delivered(&self) -> Vec<(String, Vec<u8>)> {
        self.delivered.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl LocalDelivery for TestLocal {
    async fn is_local(&self, domain: &str) -> bool {
        self.domains.iter().any(|d| d == domain)
    }

    async fn deliver(
        &self,
        address: &str,
        _sender: Option<&str>,
        message: &[u8],
    ) -> Result<(), LocalDeliveryError> {
        if address.starts_with("nobody@") {
            return Err(LocalDeliveryError::Permanent("5.1.1 no such user".into()));
        }
        self.delivered
            .lock()
            .unwrap()
            .push((address.to_string(), message.to_vec()));
        Ok(())
    }
}

/// An MTA configuration for tests: fast polling, short timeouts, a
/// one-second retry schedule.
pub fn test_config(dns: SocketAddr, smtp_port: u16) -> MtaConfig {
    MtaConfig {
        hostname: "mta.test".into(),
        dns: Some(dns),
        dns_timeout: Duration::from_millis(500),
        smtp_port,
        policy: RetryPolicy {
            schedule: vec![Duration::from_secs(1)],
            max_age: Duration::from_secs(24 * 3600),
            delay_notice_after: None,
        },
        connect_timeout: Duration::from_secs(2),
        poll_interval: Duration::from_millis(50),
        idle_timeout: Duration::from_millis(500),
        drain_timeout: Duration::from_secs(5),
        ..MtaConfig::default()
    }
}

/// A queue entry for `recipients`, due now.
pub fn entry(id: &str, sender: Option<&str>, recipients: &[&str]) -> QueueEntry {
    QueueEntry {
        id: id.to_string(),
        sender: sender.map(str::to_string),
        created: now(),
        envid: None,
        ret: None,
        body_8bit: false,
        smtputf8: false,
        size: MESSAGE.len() as u64,
        held: false,
        recipients: recipients
            .iter()
            .map(|address| QueuedRecipient {
                address: address.to_string(),
                orcpt: None,
                notify: None,
                state: RecipientState::Pending,
                attempts: 0,
                next_attempt: now(),
                last_reply: None,
                delay_notified: false,
            })
            .collect(),
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An MTA running over a memory queue.
pub struct Harness {
    pub queue: Arc<MemoryQueue>,
    pub local: Arc<TestLocal>,
    pub mta: Arc<Mta>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Harness {
    /// A harness whose queue already holds `entries` (with [`MESSAGE`]).
    pub async fn start(
        config: MtaConfig,
        local: Arc<TestLocal>,
        entries: Vec<QueueEntry>,
    ) -> Harness {
        // RUST_LOG=mailroom_mta=debug shows the delivery log.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let queue = Arc::new(MemoryQueue::new());
        for entry in entries {
            enqueue(&queue, entry).await;
        }
        let mta = Arc::new(Mta::new(config).unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(mta.clone().run(queue.clone(), local.clone(), async move {
            let _ = stopped.await;
        }));
        Harness {
            queue,
            local,
            mta,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("run returns after shutdown")
                .unwrap();
        }
    }
}

pub async fn enqueue(queue: &MemoryQueue, entry: QueueEntry) {
    let message = IncomingMessage {
        prefix: Vec::new(),
        body: Arc::new(MESSAGE.to_vec()),
    };
    queue.enqueue(&entry, &message).await.unwrap();
}

/// Waits (up to 15 s) until `condition` holds.
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `python3 -c script` with `input` on stdin. `None` (after a SKIP
/// line) when python3 is missing outside CI.
pub fn python(script: &str, input: &[u8]) -> Option<String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(error) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "python3 is required in CI: {error}"
            );
            println!("SKIP: python3 not available: {error}");
            return None;
        }
    };
    child.stdin.take().unwrap().write_all(input).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(String::from_utf8(output.stdout).unwrap())
}
