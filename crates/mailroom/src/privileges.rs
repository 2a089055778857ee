//! Privilege drop: started as root to bind ports 25/110/465/587/995, serve
//! switches to the `run_as` user after binding and before it reads any
//! client byte (no session task runs until the drop is done).

use std::path::Path;

use anyhow::{Context as _, bail};
use nix::unistd::{Gid, Uid, User, chown, setgid, setgroups, setuid};

/// The user to become, looked up before anything else happens so a typo
/// fails at start.
pub(crate) struct RunAs {
    name: String,
    uid: Uid,
    gid: Gid,
}

impl RunAs {
    /// Looks `name` up in the password database.
    pub(crate) fn lookup(name: &str) -> anyhow::Result<RunAs> {
        let user = User::from_name(name)
            .with_context(|| format!("looking up run_as user {name:?}"))?
            .with_context(|| format!("run_as: no such user {name:?}"))?;
        if user.uid.is_root() {
            bail!("run_as: {name:?} is root; name an unprivileged user");
        }
        Ok(RunAs {
            name: name.to_string(),
            uid: user.uid,
            gid: user.gid,
        })
    }

    /// Gives the data dir to the user (the server writes mail, queue and
    /// locks there), then drops group and user ids for good.
    pub(crate) fn drop_to(&self, data_dir: &Path) -> anyhow::Result<()> {
        chown_tree(data_dir, self.uid, self.gid)
            .with_context(|| format!("giving {} to {}", data_dir.display(), self.name))?;
        setgroups(&[self.gid]).context("setgroups")?;
        setgid(self.gid).context("setgid")?;
        setuid(self.uid).context("setuid")?;
        // setuid from root to another uid is irreversible; check it took.
        if Uid::effective().is_root() || setuid(Uid::from_raw(0)).is_ok() {
            bail!("privilege drop to {} did not take effect", self.name);
        }
        tracing::info!(user = %self.name, uid = self.uid.as_raw(), "dropped privileges");
        Ok(())
    }
}

fn chown_tree(path: &Path, uid: Uid, gid: Gid) -> anyhow::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    chown(path, Some(uid), Some(gid)).with_context(|| format!("chown {}", path.display()))?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_tree(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}
