//! The DNS resolver shared by MX routing and mail authentication, so both
//! honour the same `--dns HOST:PORT` and timeout.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;

/// A resolver asking only `dns` (UDP and TCP on its port, no
/// `/etc/hosts`) when given, else the system's `/etc/resolv.conf`. Each
/// query may take `timeout`, twice.
pub fn resolver(dns: Option<SocketAddr>, timeout: Duration) -> Result<TokioResolver, NetError> {
    let empty = || {
        TokioResolver::builder_with_config(
            ResolverConfig::from_parts(None, Vec::new(), Vec::new()),
            TokioRuntimeProvider::default(),
        )
    };
    let mut builder = match dns {
        Some(server) => {
            let mut udp = ConnectionConfig::udp();
            udp.port = server.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = server.port();
            let config = ResolverConfig::from_parts(
                None,
                Vec::new(),
                vec![NameServerConfig::new(server.ip(), true, vec![udp, tcp])],
            );
            let mut builder =
                TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
            // Only the given server and no /etc/hosts, so tests see exactly
            // their table.
            builder.options_mut().use_hosts_file = ResolveHosts::Never;
            builder
        }
        None => TokioResolver::builder_tokio().unwrap_or_else(|error| {
            // No usable /etc/resolv.conf: look-ups then fail temporarily
            // (mail waits in the queue, or gets a 4xx), while local
            // delivery and the relay map keep working.
            tracing::warn!(%error, "cannot read the system DNS configuration; DNS look-ups will fail");
            empty()
        }),
    };
    let options: &mut ResolverOpts = builder.options_mut();
    options.timeout = timeout;
    options.attempts = 2;
    builder.build()
}
