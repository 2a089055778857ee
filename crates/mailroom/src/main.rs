//! `mailroom`: the one binary. It parses the command line and the config
//! file, builds the concrete store and the agents' configurations, and runs
//! the subcommand. It is the only place that reads config files and the only
//! place `anyhow` is used; errors become one line on stderr and an exit code
//! (0 success, 1 failure, 2 usage).

mod cli;
mod config;
mod password_input;
mod serve;
mod user;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Serve(args) => serve::run(&cli, args),
        Command::User(cmd) => user::run(&cli, cmd),
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
