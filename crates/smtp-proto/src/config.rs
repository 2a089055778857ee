//! The session's configuration, owned by this crate (the driver maps its
//! own settings onto it).

/// Settings for one [`crate::ServerSession`]. Every default is the RFC
/// minimum or the conservative choice; see each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Our host name, used in the 220 greeting and the 250/221/421 texts.
    /// Default `localhost`.
    pub hostname: String,
    /// The largest message we take, in octets: advertised as `SIZE` (RFC
    /// 1870), checked against `MAIL … SIZE=` and enforced while DATA/BDAT
    /// bytes arrive (nothing beyond it is kept in memory). Default 25 MiB.
    pub max_message_size: u64,
    /// Recipients per transaction; RCPT beyond it gets 452 4.5.3. Default
    /// 100, the minimum RFC 5321 §4.5.3.1.8 requires servers to accept.
    pub max_recipients: usize,
    /// Protocol errors (bad syntax, bad sequence, bad line endings, over-long
    /// lines) before the session answers 421 4.7.0 and closes. Policy
    /// rejections by the driver do not count. Default 20, like Postfix's
    /// `smtpd_hard_error_limit`.
    pub max_errors: u32,
    /// The longest command line, in octets including CR LF. Default 512
    /// (RFC 5321 §4.5.3.1.4). MAIL and RCPT lines may use 500 octets more
    /// for their extension parameters (§4.5.3.1.4 allows it "for each
    /// extension"); AUTH lines and SASL responses may be up to 12,288
    /// octets (RFC 4954 §4).
    pub max_command_line: usize,
    /// The longest text line in a message, in octets including CR LF.
    /// Default 1000 (RFC 5321 §4.5.3.1.6).
    pub max_text_line: usize,
    /// Whether VRFY asks the driver. Default `false`: VRFY answers 252 2.5.0
    /// without looking anything up (no user enumeration), unless the session
    /// is authenticated.
    pub vrfy: bool,
    /// Whether EXPN asks the driver. Default `false`: EXPN answers 502 5.5.1,
    /// unless the session is authenticated.
    pub expn: bool,
    /// Advertise and accept STARTTLS (RFC 3207) while not yet in TLS.
    /// Default `false` (the driver turns it on when it has a certificate).
    pub starttls: bool,
    /// SASL mechanisms offered with AUTH (RFC 4954), e.g. `["PLAIN",
    /// "LOGIN"]`. Empty (the default) means no AUTH.
    pub auth_mechanisms: Vec<String>,
    /// Offer AUTH before TLS is active, for loopback or trusted plaintext
    /// networks only. Default `false`: passwords never cross in clear text.
    pub auth_without_tls: bool,
    /// Submission (RFC 6409 §4.3): MAIL before AUTH gets 530 5.7.0. Default
    /// `false`.
    pub require_auth: bool,
    /// The connection is TLS from the start (implicit TLS, RFC 8314 §3.3):
    /// STARTTLS is not offered. Default `false`.
    pub tls_active: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            hostname: "localhost".to_string(),
            max_message_size: 25 * 1024 * 1024,
            max_recipients: 100,
            max_errors: 20,
            max_command_line: 512,
            max_text_line: 1000,
            vrfy: false,
            expn: false,
            starttls: false,
            auth_mechanisms: Vec::new(),
            auth_without_tls: false,
            require_auth: false,
            tls_active: false,
        }
    }
}

/// Which RFC 5321 §4.5.3.2 server timeout applies to the next read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    /// Waiting for the next command (RFC 5321 §4.5.3.2.7: at least 5
    /// minutes).
    Command,
    /// Waiting for the next block of DATA or BDAT octets (RFC 5321
    /// §4.5.3.2.5/§4.5.3.2.6 are the client's matching timeouts: 3 minutes
    /// per block, 10 minutes for the final reply).
    DataBlock,
}
