//! `mailroom user add|list|passwd|del`: manage the user directory. These
//! work while the server runs: the store re-reads the directory on change.

use anyhow::Context as _;
use mailroom_store::{NewUser, password};

use crate::cli::{Cli, UserCommand};
use crate::config;
use crate::password_input::read_password;
use crate::serve::create_data_dir;

pub(crate) fn run(cli: &Cli, cmd: &UserCommand) -> anyhow::Result<()> {
    let raw = config::load_raw(cli)?;
    let data_dir = config::data_dir(cli, &raw);
    let store_url = config::store_url(cli, &raw)?;
    crate::privileges::become_run_as(raw.run_as.as_deref(), &data_dir)?;
    match cmd {
        UserCommand::Add { .. } => create_data_dir(&data_dir)?,
        _ if crate::stores::is_postgres(&store_url) => {}
        _ => config::require_data_dir(&data_dir)?,
    }
    let hostname = raw
        .hostname
        .clone()
        .unwrap_or_else(|| "localhost".to_string());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let store = runtime
        .block_on(crate::stores::open(&store_url, &data_dir, &hostname))?
        .users;
    runtime.block_on(async move {
        match cmd {
            UserCommand::Add {
                name,
                password_stdin,
                apop,
                cram_md5,
            } => {
                let name = name.to_lowercase();
                let password = read_password(*password_stdin, &format!("Password for {name}: "))?;
                let password_hash = password::hash(&password)?;
                let shared_secret = (*apop || *cram_md5).then(|| password.clone());
                store
                    .add(NewUser {
                        name: name.clone(),
                        password_hash,
                        shared_secret,
                    })
                    .await?;
                eprintln!("user {name} added");
            }
            UserCommand::List => {
                for user in store.list().await? {
                    let extra = if user.shared_secret.is_some() {
                        "\tapop/cram-md5"
                    } else {
                        ""
                    };
                    println!("{}{extra}", user.name);
                }
            }
            UserCommand::Passwd {
                name,
                password_stdin,
            } => {
                let name = name.to_lowercase();
                let existing = store
                    .lookup(&name)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("no such user: {name}"))?;
                let password =
                    read_password(*password_stdin, &format!("New password for {name}: "))?;
                let password_hash = password::hash(&password)?;
                // Keep the opt-in secret in step with the new password.
                let secret = existing.shared_secret.map(|_| Some(password.clone()));
                store.set_password(&name, password_hash, secret).await?;
                eprintln!("password for {name} changed");
            }
            UserCommand::Del { name } => {
                let name = name.to_lowercase();
                store.delete(&name).await?;
                eprintln!("user {name} deleted (their mail stays in the data dir)");
            }
        }
        Ok(())
    })
}
