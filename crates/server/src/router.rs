//! Where a recipient's mail goes: a local user's maildrop (directly, through
//! an alias or as postmaster), or nowhere (unknown user, or a domain that is
//! not ours: no relaying without AUTH or a trusted network, ever).

use mailroom_core::{Address, LocalPart};
use mailroom_smtp_proto::{ForwardPath, Reply, codes};
use mailroom_store::{StoreError, UserDb};

use crate::config::ServerConfig;

/// The outcome of routing one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// Deliver into these local users' maildrops (canonical names), and
    /// queue for these remote addresses (an alias's remote members).
    Local(Vec<String>, Vec<Address>),
    /// Queue for relaying to another domain's mail exchanger.
    Relay(Address),
}

/// Decides where mail for a recipient goes.
pub(crate) struct Router<'a> {
    pub config: &'a ServerConfig,
    pub users: &'a dyn UserDb,
}

impl Router<'_> {
    /// Routes an RCPT forward path, or says which reply refuses it.
    /// `may_relay`: the client authenticated or is in a trusted network.
    pub(crate) async fn route(&self, path: &ForwardPath, may_relay: bool) -> Result<Route, Reply> {
        let address = match path {
            // RFC 5321 §4.5.1: "Postmaster" without a domain is always accepted.
            ForwardPath::Postmaster => return self.postmaster().await,
            ForwardPath::Mailbox(address) => address,
        };
        if !self.config.is_local_domain(address.domain()) {
            // Never an open relay: other domains only for authenticated or
            // trusted clients.
            return if may_relay {
                Ok(Route::Relay(address.clone()))
            } else {
                Err(codes::relay_denied())
            };
        }
        self.route_local(address.local_part()).await
    }

    /// Routes a local part of one of our domains.
    pub(crate) async fn route_local(&self, local: &LocalPart) -> Result<Route, Reply> {
        let key = local.user_key();
        if key == "postmaster" {
            return self.postmaster().await;
        }
        let aliases = self.users.aliases().await.map_err(store_reply)?;
        if let Some(expansion) = aliases.expand(&key) {
            if expansion.truncated {
                // Delivering to part of a list would be worse than refusing.
                tracing::error!(alias = %key, "alias expansion exceeds its limits; recipient refused");
                return Err(codes::local_error());
            }
            let mut users = Vec::new();
            for name in expansion.local {
                if name == "postmaster" {
                    if let Ok(Route::Local(pm, _)) = self.postmaster().await {
                        users.extend(pm);
                    }
                } else if self
                    .users
                    .lookup(&name)
                    .await
                    .map_err(store_reply)?
                    .is_some()
                {
                    users.push(name);
                } else {
                    tracing::warn!(alias = %key, member = %name, "alias member is not a local user; skipped");
                }
            }
            users.sort();
            users.dedup();
            // An alias's remote members are forwarded whoever sent the mail:
            // the local operator wrote the alias, so this is not open relay.
            let remote = expansion.remote;
            if users.is_empty() && remote.is_empty() {
                return Err(codes::user_unknown());
            }
            return Ok(Route::Local(users, remote));
        }
        match self.users.lookup(&key).await.map_err(store_reply)? {
            Some(user) => Ok(Route::Local(vec![user.name], Vec::new())),
            None => Err(codes::user_unknown()),
        }
    }

    async fn postmaster(&self) -> Result<Route, Reply> {
        let name = match &self.config.postmaster {
            Some(name) => Some(name.to_lowercase()),
            None => self
                .users
                .list()
                .await
                .map_err(store_reply)?
                .into_iter()
                .next()
                .map(|u| u.name),
        };
        match name {
            Some(name) => Ok(Route::Local(vec![name], Vec::new())),
            None => Err(codes::user_unknown()),
        }
    }
}

/// Is `address` one of our local users (for VRFY)?
pub(crate) async fn verify(router: &Router<'_>, argument: &str) -> Reply {
    let argument = argument
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>');
    let local = match Address::parse(argument, true) {
        Ok(address) if router.config.is_local_domain(address.domain()) => {
            address.local_part().clone()
        }
        Ok(_) => return codes::vrfy_cannot_verify(),
        Err(_) => match LocalPart::parse(argument, true) {
            Ok(local) => local,
            Err(_) => return codes::vrfy_cannot_verify(),
        },
    };
    match router.route_local(&local).await {
        Ok(Route::Local(users, _)) if !users.is_empty() => {
            codes::vrfy_ok(&format!("<{}@{}>", users.join(","), router.config.hostname))
        }
        Ok(_) => codes::vrfy_cannot_verify(),
        Err(reply) => reply,
    }
}

/// Maps a store failure to the temporary reply a client should retry on.
pub(crate) fn store_reply(err: StoreError) -> Reply {
    match err {
        StoreError::NoSpace => codes::no_space(),
        StoreError::QuotaExceeded(_) => codes::quota_exceeded(),
        other => {
            tracing::error!(error = %other, "store failure");
            codes::local_error()
        }
    }
}
