//! Where a password comes from (INTERFACE.md): `--password-stdin` (one line,
//! CR/LF stripped) wins, then `MAILROOM_PASSWORD`, then a terminal prompt;
//! with none of them and no terminal, a usage error (exit 2).

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Context as _;

use crate::UsageError;

/// Reads the password by the rules above.
pub(crate) fn read_password(from_stdin: bool, prompt: &str) -> anyhow::Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        let password = line.trim_end_matches(['\r', '\n']).to_string();
        if password.is_empty() {
            return Err(UsageError("empty password on standard input".into()).into());
        }
        return Ok(password);
    }
    if let Ok(password) = std::env::var("MAILROOM_PASSWORD")
        && !password.is_empty()
    {
        return Ok(password);
    }
    if !std::io::stdin().is_terminal() {
        return Err(UsageError(
            "no password given: use --password-stdin or set MAILROOM_PASSWORD (no terminal to prompt on)".into(),
        )
        .into());
    }
    prompt_hidden(prompt)
}

fn prompt_hidden(prompt: &str) -> anyhow::Result<String> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    let mut stderr = std::io::stderr();
    write!(stderr, "{prompt}")?;
    stderr.flush()?;
    let saved = tcgetattr(&stdin).context("reading terminal settings")?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    tcsetattr(&stdin, OptionalActions::Now, &quiet).context("turning off echo")?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    let _ = tcsetattr(&stdin, OptionalActions::Now, &saved);
    writeln!(stderr)?;
    read.context("reading the password")?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        return Err(UsageError("empty password".into()).into());
    }
    Ok(password)
}
