//! `mailroom queue list|show|flush|hold|release|delete`: the queue tools,
//! like mailq, postqueue and postsuper. They edit the queue files directly;
//! the running server notices changes within a second.

use anyhow::{Context as _, bail};
use mailroom_store::{QueueEntry, QueueStore, RecipientState};

use crate::cli::{Cli, QueueCommand};
use crate::config;

pub(crate) fn run(cli: &Cli, cmd: &QueueCommand) -> anyhow::Result<()> {
    let raw = config::load_raw(cli)?;
    let data_dir = config::data_dir(cli, &raw);
    let store_url = config::store_url(cli, &raw)?;
    if !crate::stores::is_postgres(&store_url) {
        config::require_data_dir(&data_dir)?;
    }
    crate::privileges::become_run_as(raw.run_as.as_deref(), &data_dir)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let hostname = raw
        .hostname
        .clone()
        .unwrap_or_else(|| "localhost".to_string());
    let queue = runtime
        .block_on(crate::stores::open(&store_url, &data_dir, &hostname))?
        .queue;
    let queue = queue.as_ref();
    runtime.block_on(async {
        match cmd {
            QueueCommand::List => list(queue).await,
            QueueCommand::Show { id } => show(queue, id).await,
            QueueCommand::Flush => {
                let now = mailroom_server::time::unix_now();
                let mut count = 0;
                for mut entry in queue.list().await? {
                    if entry.held || entry.is_done() {
                        continue;
                    }
                    for r in &mut entry.recipients {
                        if r.state == RecipientState::Pending {
                            r.next_attempt = now;
                        }
                    }
                    queue.update(&entry).await?;
                    count += 1;
                }
                eprintln!("{count} message(s) scheduled for immediate delivery");
                Ok(())
            }
            QueueCommand::Hold { id } => set_held(queue, id, true).await,
            QueueCommand::Release { id } => set_held(queue, id, false).await,
            QueueCommand::Delete { id } => {
                if queue.get(id).await?.is_none() {
                    bail!("no such queue id: {id}");
                }
                queue.remove(id).await?;
                eprintln!("{id} deleted");
                Ok(())
            }
        }
    })
}

async fn list(queue: &dyn QueueStore) -> anyhow::Result<()> {
    let entries = queue.list().await?;
    if entries.is_empty() {
        println!("Mail queue is empty");
        return Ok(());
    }
    for entry in &entries {
        let flag = if entry.held { "!" } else { "" };
        println!(
            "{}{flag}\t{}\t{}\t{}",
            entry.id,
            entry.size,
            mailroom_server::time::rfc5322(entry.created),
            entry.sender.as_deref().unwrap_or("<>")
        );
        for r in entry
            .recipients
            .iter()
            .filter(|r| r.state == RecipientState::Pending)
        {
            match &r.last_reply {
                Some(reply) => println!("\t\t({reply})\n\t\t{}", r.address),
                None => println!("\t\t{}", r.address),
            }
        }
    }
    println!("-- {} message(s) in queue", entries.len());
    Ok(())
}

async fn show(queue: &dyn QueueStore, id: &str) -> anyhow::Result<()> {
    let Some(entry) = queue.get(id).await? else {
        bail!("no such queue id: {id}");
    };
    print_entry(&entry);
    let message = queue.message(id).await?;
    println!();
    let header_end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 2)
        .unwrap_or(message.len());
    print!("{}", String::from_utf8_lossy(&message[..header_end]));
    println!(
        "[{} octets of body]",
        message.len() - header_end.min(message.len())
    );
    Ok(())
}

fn print_entry(entry: &QueueEntry) {
    println!("id: {}", entry.id);
    println!("sender: <{}>", entry.sender.as_deref().unwrap_or(""));
    println!("created: {}", mailroom_server::time::rfc5322(entry.created));
    println!("size: {}", entry.size);
    println!("held: {}", if entry.held { "yes" } else { "no" });
    for r in &entry.recipients {
        let state = match r.state {
            RecipientState::Pending => "pending",
            RecipientState::Delivered => "delivered",
            RecipientState::Failed => "failed",
        };
        println!(
            "recipient: <{}> {state}, {} attempt(s), next {}{}",
            r.address,
            r.attempts,
            mailroom_server::time::rfc5322(r.next_attempt),
            r.last_reply
                .as_deref()
                .map(|l| format!(", last: {l}"))
                .unwrap_or_default()
        );
    }
}

async fn set_held(queue: &dyn QueueStore, id: &str, held: bool) -> anyhow::Result<()> {
    let Some(mut entry) = queue.get(id).await? else {
        bail!("no such queue id: {id}");
    };
    entry.held = held;
    queue.update(&entry).await?;
    eprintln!("{id} {}", if held { "held" } else { "released" });
    Ok(())
}
