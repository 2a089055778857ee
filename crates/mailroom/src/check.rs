//! `mailroom check [--config FILE]` validates a configuration and prints
//! every problem with its key; `mailroom config example` prints the fully
//! commented default configuration.

use anyhow::bail;

use crate::cli::{Cli, ServeArgs};
use crate::config::{RawConfig, Settings};

/// Prints the annotated example generated from the key table
/// (config_keys.rs), which tests tie to what the code accepts and defaults to.
pub(crate) fn example() -> anyhow::Result<()> {
    print!("{}", crate::config_keys::example());
    Ok(())
}

pub(crate) fn run(cli: &Cli) -> anyhow::Result<()> {
    let Some(path) = &cli.config else {
        bail!(crate::UsageError("check needs --config FILE".into()));
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    let problems = problems(&text);
    if problems.is_empty() {
        println!("{}: ok", path.display());
        return Ok(());
    }
    for problem in &problems {
        eprintln!("{}: {problem}", path.display());
    }
    bail!("{} problem(s) in {}", problems.len(), path.display())
}

/// Every problem in a config file's text, each naming its key.
pub(crate) fn problems(text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    // Unknown keys and wrong types: deserialize table by table so one bad
    // section does not hide the others.
    let table: toml::Table = match toml::from_str(text) {
        Ok(table) => table,
        Err(err) => return vec![one_line(&err.to_string())],
    };
    let mut clean = toml::Table::new();
    for (key, value) in table {
        let mut single = toml::Table::new();
        single.insert(key.clone(), value.clone());
        match toml::Value::Table(single).try_into::<RawConfig>() {
            Ok(_) => {
                clean.insert(key, value);
            }
            Err(err) => problems.push(format!("{key}: {}", one_line(&err.to_string()))),
        }
    }
    // Values that parse but do not make sense together (listen addresses,
    // durations, domains) are checked by the same code serve runs.
    if let Ok(raw) = toml::Value::Table(clean).try_into::<RawConfig>() {
        let args = ServeArgs::default();
        if let Err(err) = Settings::resolve(raw, &args) {
            problems.push(format!("{err:#}"));
        }
    }
    problems
}

fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_is_clean_and_bad_configs_name_their_keys() {
        let example = crate::config_keys::example();
        assert!(problems(&example).is_empty(), "{:?}", problems(&example));
        let bad = "hostnme = \"x\"\n[listen]\nsmtp = \"nonsense\"\n[smtp]\nvrfy = 3\n";
        let found = problems(bad);
        assert!(found.iter().any(|p| p.starts_with("hostnme")), "{found:?}");
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("smtp") && p.contains("vrfy")),
            "{found:?}"
        );
        assert!(found.iter().any(|p| p.contains("listen.smtp")), "{found:?}");
    }
}
