//! `mailroom generate man DIR` and `mailroom generate completions SHELL`:
//! man pages and shell completions made from the clap definitions, so the
//! packaged documentation is always the command line that ships. Hidden from
//! `--help`; packaging (packaging/build-deb.sh) is its user.

use std::path::Path;

use anyhow::Context as _;
use clap::CommandFactory as _;

use crate::cli::{Cli, GenerateCommand};

pub(crate) fn run(cmd: &GenerateCommand) -> anyhow::Result<()> {
    match cmd {
        GenerateCommand::Man { dir } => man(dir),
        GenerateCommand::Completions { shell } => {
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "mailroom",
                &mut std::io::stdout(),
            );
            Ok(())
        }
    }
}

/// Writes mailroom.1 and one page per visible subcommand
/// (mailroom-serve.1, mailroom-user-add.1, …) into `dir`.
fn man(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("writing man pages into {}", dir.display()))
}
