//! `mailroom show FILE|- [--extract DIR]`: prints a message's decoded
//! headers and MIME tree; `--extract` writes its attachments into DIR.

use std::io::Read;
use std::path::Path;

use anyhow::{Context as _, bail};

use crate::cli::ShowArgs;

pub(crate) fn run(args: &ShowArgs) -> anyhow::Result<()> {
    let raw = if args.file == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("reading the message from standard input")?;
        buf
    } else {
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?
    };
    let summary = mailroom_mime::describe(&raw).context("parsing the message")?;
    print!("{}", summary.render());
    if let Some(dir) = &args.extract {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let attachments = mailroom_mime::attachments(&raw).context("decoding attachments")?;
        if attachments.is_empty() {
            eprintln!("no attachments");
        }
        for attachment in attachments {
            // File names are sanitised by mailroom-mime (no separators, no
            // leading dots); refuse to overwrite what is already there.
            let path = dir.join(&attachment.filename);
            if path.exists() {
                bail!("{} exists; not overwriting", path.display());
            }
            std::fs::write(&path, &attachment.data)
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "wrote {} ({} octets, {})",
                path.display(),
                attachment.data.len(),
                attachment.content_type
            );
        }
    }
    Ok(())
}
