//! The command line (INTERFACE.md): global flags and subcommands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// A complete mail server in one binary.
#[derive(Debug, Parser)]
#[command(name = "mailroom", version, about, propagate_version = true)]
pub(crate) struct Cli {
    /// TOML configuration file; flags override it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// All local state: mailboxes, queue, users, aliases, TLS key.
    /// [default: $MAILROOM_DATA_DIR, the config's data_dir, ./mailroom-data]
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where mail, queue and users live: `maildir:` (embedded) or `postgres://…`.
    #[arg(long, global = true, value_name = "URL")]
    pub store: Option<String>,
    /// Log format: `text` (default) or `json`.
    #[arg(long, global = true, value_name = "FORMAT")]
    pub log_format: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the mail server in the foreground until SIGTERM/SIGINT.
    Serve(ServeArgs),
    /// Manage local users.
    #[command(subcommand)]
    User(UserCommand),
    /// Compose a message and submit it (or queue it locally).
    Send(crate::send::SendArgs),
    /// Validate a configuration file and print every problem with its key.
    Check,
    /// Configuration helpers.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a message's decoded headers and MIME tree.
    Show(ShowArgs),
    /// Inspect and manage the outbound queue (like mailq/postqueue/postsuper).
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Download new messages (by UIDL) from a POP3 server into a Maildir.
    Fetch(crate::fetch::FetchArgs),
    /// DKIM keys for local domains, and the DNS records to publish.
    #[command(subcommand)]
    Dkim(DkimCommand),
    /// Write man pages or shell completions from these definitions (packaging).
    #[command(subcommand, hide = true)]
    Generate(GenerateCommand),
    /// sendmail(8)-compatible injection: message on stdin, queued for delivery.
    Sendmail {
        /// sendmail arguments: [-t] [-i|-oi] [-f FROM|-r FROM] [-F NAME] [RCPT…]
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum QueueCommand {
    /// List queued messages (like mailq).
    List,
    /// Show one message's envelope, delivery history and headers.
    Show {
        /// The queue id.
        id: String,
    },
    /// Try every queued message now.
    Flush,
    /// Hold a message: it is not tried until released.
    Hold {
        /// The queue id.
        id: String,
    },
    /// Release a held message.
    Release {
        /// The queue id.
        id: String,
    },
    /// Delete a message from the queue (no bounce).
    Delete {
        /// The queue id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum DkimCommand {
    /// Make a new key in the store (DATA_DIR/dkim/DOMAIN/SELECTOR.key, or
    /// the database with --store postgres://…) and print the DNS records
    /// (DKIM key, SPF, DMARC) to publish.
    Generate {
        /// The domain mail is sent from (the From: address's domain).
        domain: String,
        /// The selector: the key is published at SELECTOR._domainkey.DOMAIN.
        #[arg(long, default_value = "mailroom")]
        selector: String,
        /// `rsa` (rsa-sha256, 2048 bits) or `ed25519` (ed25519-sha256).
        #[arg(long, default_value = "rsa")]
        algorithm: String,
    },
    /// Print the DNS records for DOMAIN's keys again, with SPF and DMARC.
    Show {
        /// The domain.
        domain: String,
    },
}

#[derive(Debug, Default, Args)]
pub(crate) struct ServeArgs {
    /// SMTP relay/MX listener (`off` to disable) [default: 127.0.0.1:2525]
    #[arg(long, value_name = "ADDR")]
    pub smtp: Option<String>,
    /// Submission listener, AUTH required [default: 127.0.0.1:2587]
    #[arg(long, value_name = "ADDR")]
    pub submission: Option<String>,
    /// Submission over implicit TLS [default: 127.0.0.1:2465]
    #[arg(long, value_name = "ADDR")]
    pub smtps: Option<String>,
    /// POP3 listener [default: 127.0.0.1:1100]
    #[arg(long, value_name = "ADDR")]
    pub pop3: Option<String>,
    /// POP3 over implicit TLS [default: 127.0.0.1:1995]
    #[arg(long, value_name = "ADDR")]
    pub pop3s: Option<String>,
    /// Prometheus metrics endpoint (`GET /metrics`) [default: off]
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
    /// Name in greetings, Received: and bounces [default: localhost]
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// A local domain (repeatable); the hostname is always local.
    #[arg(long = "domain", value_name = "D")]
    pub domains: Vec<String>,
    /// Route domain D to HOST:PORT, skipping MX (repeatable; `*` = smarthost).
    #[arg(long = "relay-map", value_name = "D=HOST:PORT")]
    pub relay_map: Vec<String>,
    /// DNS resolver for MX/A/AAAA look-ups [default: system resolver]
    #[arg(long, value_name = "HOST:PORT")]
    pub dns: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Add a user; they receive mail for NAME@ every local domain.
    Add {
        /// The user name (a local part; case-insensitive).
        name: String,
        /// Read the password from one line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Also store the plaintext-equivalent secret APOP needs (opt-in).
        #[arg(long)]
        apop: bool,
        /// Also store the plaintext-equivalent secret CRAM-MD5 needs (opt-in).
        #[arg(long)]
        cram_md5: bool,
    },
    /// List users.
    List,
    /// Change a user's password.
    Passwd {
        /// The user name.
        name: String,
        /// Read the password from one line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Delete a user (their mail stays on disk).
    Del {
        /// The user name.
        name: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// The message file, or `-` for standard input.
    pub file: PathBuf,
    /// Write the attachments into this directory.
    #[arg(long, value_name = "DIR")]
    pub extract: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum GenerateCommand {
    /// Write mailroom.1 and a page per subcommand (mailroom-serve.1, …) into DIR.
    Man {
        /// Output directory (created if missing).
        dir: PathBuf,
    },
    /// Print the completion script for SHELL on standard output.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Print the fully commented default configuration.
    Example,
}
