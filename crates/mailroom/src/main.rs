//! `mailroom`: the one binary. It parses the command line and the config
//! file, builds the concrete store and the agents' configurations, and runs
//! the subcommand. It is the only place that reads config files and the only
//! place `anyhow` is used; errors become one line on stderr and an exit code
//! (0 success, 1 failure, 2 usage).

mod check;
mod cli;
mod config;
mod config_keys;
mod dkim;
mod fetch;
mod generate;
mod headers;
mod local_delivery;
mod metrics;
mod password_input;
mod privileges;
mod queue_cmd;
mod reload;
mod send;
mod sendmail;
mod serve;
mod show;
mod stores;
mod user;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    // Installed as /usr/sbin/sendmail (a link to mailroom), act as sendmail.
    let mut argv = std::env::args();
    let invoked_as = argv.next().unwrap_or_default();
    if std::path::Path::new(&invoked_as)
        .file_name()
        .is_some_and(|n| n == "sendmail")
    {
        let args: Vec<String> = argv.collect();
        return sendmail::run(None, None, None, &args);
    }
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Serve(args) => serve::run(&cli, args),
        Command::User(cmd) => user::run(&cli, cmd),
        Command::Queue(cmd) => queue_cmd::run(&cli, cmd),
        Command::Fetch(args) => fetch::run(args),
        Command::Dkim(cmd) => dkim::run(&cli, cmd),
        Command::Show(args) => show::run(args),
        Command::Check => check::run(&cli),
        Command::Config(cli::ConfigCommand::Example) => check::example(),
        Command::Generate(cmd) => generate::run(cmd),
        Command::Send(args) => send::run(&cli, args),
        Command::Sendmail { args } => {
            return sendmail::run(
                cli.config.clone(),
                cli.data_dir.clone(),
                cli.store.clone(),
                args,
            );
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let usage = err.downcast_ref::<UsageError>().is_some();
            // One line: the error and its causes, never a backtrace.
            let mut line = format!("mailroom: {err}");
            for cause in err.chain().skip(1) {
                line.push_str(&format!(": {cause}"));
            }
            eprintln!("{line}");
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

/// An error in how mailroom was called (exit status 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct UsageError(pub String);
