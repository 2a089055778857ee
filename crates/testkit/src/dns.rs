//! A small authoritative DNS server for tests, answering from a table.
//!
//! It listens on `127.0.0.1` with UDP and TCP on the same port, on its own
//! threads with std sockets, so synchronous tests, tokio tests and
//! end-to-end tests (which start `mailroom serve --dns 127.0.0.1:PORT`) can
//! all use it. The wire format is hickory-proto's.
//!
//! ```
//! use mailroom_testkit::dns::{DnsServer, Zone};
//!
//! let zone = Zone::new()
//!     .mx("example.org", 10, "mx1.example.org")
//!     .a("mx1.example.org", "127.0.0.1".parse().unwrap())
//!     .null_mx("nomail.example")
//!     .servfail("broken.example");
//! let server = DnsServer::start(zone);
//! assert_eq!(server.addr().ip().to_string(), "127.0.0.1");
//! ```
//!
//! Answers: a name with an entry of the asked type gets those records; a
//! name the table knows (any type) but without that type gets NOERROR with
//! no answer (NODATA); an unknown name gets NXDOMAIN; names marked
//! [`Zone::servfail`] get SERVFAIL and names marked [`Zone::timeout`] get
//! no reply at all. Names are case-insensitive, with or without the final
//! dot.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, MX, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// The table the server answers from. Build it with the chained methods;
/// [`DnsServer::set_zone`] replaces it while the server runs.
#[derive(Debug, Clone, Default)]
pub struct Zone {
    records: HashMap<String, Vec<Entry>>,
    special: HashMap<String, Special>,
}

impl Zone {
    /// An empty table: every name is NXDOMAIN.
    pub fn new() -> Zone {
        Zone::default()
    }

    /// Adds an MX record: `domain` is served by `exchange` at `preference`.
    pub fn mx(self, domain: &str, preference: u16, exchange: &str) -> Zone {
        self.entry(
            domain,
            Entry::Mx {
                preference,
                exchange: exchange.to_string(),
            },
        )
    }

    /// Adds the RFC 7505 null MX: a single MX record, preference 0,
    /// exchange `.` ("this domain accepts no mail").
    pub fn null_mx(self, domain: &str) -> Zone {
        self.mx(domain, 0, ".")
    }

    /// Adds an A record.
    pub fn a(self, name: &str, ip: Ipv4Addr) -> Zone {
        self.entry(name, Entry::A(ip))
    }

    /// Adds an AAAA record.
    pub fn aaaa(self, name: &str, ip: Ipv6Addr) -> Zone {
        self.entry(name, Entry::Aaaa(ip))
    }

    /// Adds an A or AAAA record, whichever `ip` is.
    pub fn ip(self, name: &str, ip: IpAddr) -> Zone {
        match ip {
            IpAddr::V4(v4) => self.a(name, v4),
            IpAddr::V6(v6) => self.aaaa(name, v6),
        }
    }

    /// Adds a TXT record. Text longer than 255 octets (a DKIM RSA key) is
    /// sent as several character-strings of at most 255 octets each
    /// (RFC 1035 §3.3.14), which readers join back together.
    pub fn txt(self, name: &str, text: &str) -> Zone {
        self.entry(name, Entry::Txt(text.to_string()))
    }

    /// Makes `name` exist without records (every type answers NODATA).
    pub fn exists(mut self, name: &str) -> Zone {
        self.records.entry(key(name)).or_default();
        self
    }

    /// Answers NXDOMAIN for `name` (also the answer for any unknown name;
    /// this overrides records added for it).
    pub fn nxdomain(self, name: &str) -> Zone {
        self.special(name, Special::NxDomain)
    }

    /// Answers SERVFAIL for every query about `name`.
    pub fn servfail(self, name: &str) -> Zone {
        self.special(name, Special::ServFail)
    }

    /// Never answers queries about `name`: the resolver times out.
    pub fn timeout(self, name: &str) -> Zone {
        self.special(name, Special::Timeout)
    }

    fn entry(mut self, name: &str, entry: Entry) -> Zone {
        self.records.entry(key(name)).or_default().push(entry);
        self
    }

    fn special(mut self, name: &str, special: Special) -> Zone {
        self.special.insert(key(name), special);
        self
    }

    /// The reply to `query`, `None` for no reply (a timeout).
    fn answer(&self, query: &Message) -> Option<Message> {
        let mut response = Message::response(query.metadata.id, OpCode::Query);
        response.metadata.message_type = MessageType::Response;
        response.metadata.recursion_desired = query.metadata.recursion_desired;
        response.metadata.recursion_available = true;
        response.metadata.authoritative = true;
        let Some(question) = query.queries.first() else {
            response.metadata.response_code = ResponseCode::FormErr;
            return Some(response);
        };
        response.add_query(question.clone());
        let name = key(&question.name.to_ascii());
        match self.special.get(&name) {
            Some(Special::Timeout) => return None,
            Some(Special::ServFail) => {
                response.metadata.response_code = ResponseCode::ServFail;
                return Some(response);
            }
            Some(Special::NxDomain) => {
                response.metadata.response_code = ResponseCode::NXDomain;
                return Some(response);
            }
            None => {}
        }
        let Some(entries) = self.records.get(&name) else {
            response.metadata.response_code = ResponseCode::NXDomain;
            return Some(response);
        };
        for entry in entries {
            if let Some(rdata) = entry.rdata(question.query_type) {
                response.add_answer(Record::from_rdata(question.name.clone(), TTL, rdata));
            }
        }
        Some(response)
    }
}

/// A running test DNS server. Dropping it stops the server threads.
#[derive(Debug)]
pub struct DnsServer {
    addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl DnsServer {
    /// Starts a server on `127.0.0.1` (UDP and TCP on one free port)
    /// answering from `zone`.
    ///
    /// # Panics
    ///
    /// When no port can be bound: a test set-up failure.
    pub fn start(zone: Zone) -> DnsServer {
        let (udp, tcp) = bind_pair().expect("bind the test DNS server on 127.0.0.1");
        let addr = udp.local_addr().expect("local address of a bound socket");
        let zone = Arc::new(Mutex::new(zone));
        let queries = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let udp_thread = {
            let (zone, queries, stop) = (zone.clone(), queries.clone(), stop.clone());
            thread::spawn(move || serve_udp(udp, zone, queries, stop))
        };
        let tcp_thread = {
            let (zone, queries, stop) = (zone.clone(), queries.clone(), stop.clone());
            thread::spawn(move || serve_tcp(tcp, zone, queries, stop))
        };
        DnsServer {
            addr,
            zone,
            queries,
            stop,
            threads: vec![udp_thread, tcp_thread],
        }
    }

    /// Where the server listens (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the table while the server runs.
    pub fn set_zone(&self, zone: Zone) {
        *self.zone.lock().unwrap_or_else(PoisonError::into_inner) = zone;
    }

    /// Queries answered (or deliberately ignored) so far.
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the TCP accept loop.
        let _ = TcpStream::connect(self.addr);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// One record in the table.
#[derive(Debug, Clone)]
enum Entry {
    Mx { preference: u16, exchange: String },
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Txt(String),
}

impl Entry {
    fn rdata(&self, wanted: RecordType) -> Option<RData> {
        match (self, wanted) {
            (
                Entry::Mx {
                    preference,
                    exchange,
                },
                RecordType::MX,
            ) => {
                let exchange = if exchange == "." {
                    Name::root()
                } else {
                    Name::from_ascii(fqdn(exchange)).ok()?
                };
                Some(RData::MX(MX::new(*preference, exchange)))
            }
            (Entry::A(ip), RecordType::A) => Some(RData::A(A(*ip))),
            (Entry::Aaaa(ip), RecordType::AAAA) => Some(RData::AAAA(AAAA(*ip))),
            (Entry::Txt(text), RecordType::TXT) => Some(RData::TXT(TXT::new(
                text.as_bytes()
                    .chunks(255)
                    .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
                    .collect(),
            ))),
            _ => None,
        }
    }
}

/// A name whose every query gets the same failure.
#[derive(Debug, Clone, Copy)]
enum Special {
    NxDomain,
    ServFail,
    Timeout,
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

/// Binds UDP on a free port, then TCP on the same one (retrying with
/// another port if TCP's is taken).
fn bind_pair() -> io::Result<(UdpSocket, TcpListener)> {
    let mut last = None;
    for _ in 0..20 {
        let udp = UdpSocket::bind("127.0.0.1:0")?;
        match TcpListener::bind(udp.local_addr()?) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(error) => last = Some(error),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no port")))
}

fn respond(zone: &Mutex<Zone>, queries: &AtomicUsize, packet: &[u8]) -> Option<Vec<u8>> {
    let query = Message::from_vec(packet).ok()?;
    queries.fetch_add(1, Ordering::SeqCst);
    let response = zone
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .answer(&query)?;
    response.to_vec().ok()
}

fn serve_udp(
    socket: UdpSocket,
    zone: Arc<Mutex<Zone>>,
    queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) {
    // A short read timeout lets the loop notice `stop`.
    if socket.set_read_timeout(Some(POLL)).is_err() {
        return;
    }
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        let Ok((n, peer)) = socket.recv_from(&mut buf) else {
            continue;
        };
        if let Some(reply) = respond(&zone, &queries, &buf[..n]) {
            let _ = socket.send_to(&reply, peer);
        }
    }
}

fn serve_tcp(
    listener: TcpListener,
    zone: Arc<Mutex<Zone>>,
    queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let (zone, queries) = (zone.clone(), queries.clone());
        thread::spawn(move || {
            let _ = serve_tcp_connection(stream, &zone, &queries);
        });
    }
}

/// RFC 1035 §4.2.2: each message is preceded by a two-octet length.
fn serve_tcp_connection(
    mut stream: TcpStream,
    zone: &Mutex<Zone>,
    queries: &AtomicUsize,
) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    loop {
        let mut len = [0u8; 2];
        stream.read_exact(&mut len)?;
        let mut packet = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut packet)?;
        if let Some(reply) = respond(zone, queries, &packet) {
            let len = u16::try_from(reply.len()).map_err(io::Error::other)?;
            stream.write_all(&len.to_be_bytes())?;
            stream.write_all(&reply)?;
        }
    }
}

const TTL: u32 = 60;
const POLL: Duration = Duration::from_millis(50);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use hickory_proto::op::Query;

    use super::*;

    fn ask(server: &DnsServer, name: &str, kind: RecordType) -> Option<Message> {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut query = Message::query();
        query.add_query(Query::query(Name::from_ascii(name).unwrap(), kind));
        socket
            .send_to(&query.to_vec().unwrap(), server.addr())
            .unwrap();
        let mut buf = [0u8; 4096];
        let (n, _) = socket.recv_from(&mut buf).ok()?;
        let reply = Message::from_vec(&buf[..n]).unwrap();
        assert_eq!(reply.metadata.id, query.metadata.id);
        Some(reply)
    }

    #[test]
    fn answers_from_the_table() {
        let server = DnsServer::start(
            Zone::new()
                .mx("example.org", 10, "mx1.example.org")
                .mx("example.org", 20, "mx2.example.org")
                .a("mx1.example.org", Ipv4Addr::LOCALHOST)
                .aaaa("mx1.example.org", Ipv6Addr::LOCALHOST)
                .txt("example.org", "v=spf1 -all")
                .txt("long.example", &"k".repeat(600))
                .null_mx("nomail.example")
                .servfail("broken.example")
                .timeout("slow.example"),
        );
        let mx = ask(&server, "Example.ORG.", RecordType::MX).unwrap();
        assert_eq!(mx.metadata.response_code, ResponseCode::NoError);
        let mut prefs: Vec<(u16, String)> = mx
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                _ => None,
            })
            .collect();
        prefs.sort();
        assert_eq!(
            prefs,
            vec![
                (10, "mx1.example.org.".to_string()),
                (20, "mx2.example.org.".to_string())
            ]
        );
        let a = ask(&server, "mx1.example.org.", RecordType::A).unwrap();
        assert_eq!(a.answers.len(), 1);
        let aaaa = ask(&server, "mx1.example.org.", RecordType::AAAA).unwrap();
        assert_eq!(aaaa.answers.len(), 1);
        let txt = ask(&server, "example.org.", RecordType::TXT).unwrap();
        assert_eq!(txt.answers.len(), 1);
        let long = ask(&server, "long.example.", RecordType::TXT).unwrap();
        match &long.answers[0].data {
            RData::TXT(txt) => {
                let lens: Vec<usize> = txt.txt_data.iter().map(|s| s.len()).collect();
                assert_eq!(lens, vec![255, 255, 90]);
                let joined: Vec<u8> = txt
                    .txt_data
                    .iter()
                    .flat_map(|s| s.iter().copied())
                    .collect();
                assert_eq!(joined, "k".repeat(600).into_bytes());
            }
            other => panic!("{other:?}"),
        }
        let nodata = ask(&server, "example.org.", RecordType::A).unwrap();
        assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
        assert!(nodata.answers.is_empty());
        let null = ask(&server, "nomail.example.", RecordType::MX).unwrap();
        match &null.answers[0].data {
            RData::MX(mx) => assert!(mx.exchange.is_root()),
            other => panic!("{other:?}"),
        }
        let nx = ask(&server, "unknown.example.", RecordType::MX).unwrap();
        assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
        let fail = ask(&server, "broken.example.", RecordType::MX).unwrap();
        assert_eq!(fail.metadata.response_code, ResponseCode::ServFail);
        assert!(ask(&server, "slow.example.", RecordType::MX).is_none());
        assert!(server.queries() >= 10);
    }

    #[test]
    fn answers_over_tcp() {
        let server = DnsServer::start(Zone::new().a("host.example", Ipv4Addr::LOCALHOST));
        let mut stream = TcpStream::connect(server.addr()).unwrap();
        let mut query = Message::query();
        query.add_query(Query::query(
            Name::from_ascii("host.example.").unwrap(),
            RecordType::A,
        ));
        let bytes = query.to_vec().unwrap();
        stream
            .write_all(&(bytes.len() as u16).to_be_bytes())
            .unwrap();
        stream.write_all(&bytes).unwrap();
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).unwrap();
        let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut reply).unwrap();
        let reply = Message::from_vec(&reply).unwrap();
        assert_eq!(reply.answers.len(), 1);
    }
}
