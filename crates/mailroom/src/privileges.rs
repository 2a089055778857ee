//! Privilege drop: started as root to bind ports 25/110/465/587/995, serve
//! switches to the `run_as` user after binding and before it reads any
//! client byte (no session task runs until the drop is done).

use std::os::unix::fs::MetadataExt as _;
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
        self.drop_ids()
    }

    fn drop_ids(&self) -> anyhow::Result<()> {
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

/// The admin commands that write the data dir (`user`, `queue`, `sendmail`,
/// `send` without `--server`), run by root where the config names a
/// `run_as` user, become that user first, as serve does. Otherwise what
/// they create (the users file, mode 0600; queue entries) would belong to
/// root, and the running server, already that user, could not read it: a
/// `user add` would break delivery for every user. Not root, or no
/// `run_as`: nothing to do.
pub(crate) fn become_run_as(run_as: Option<&str>, data_dir: &Path) -> anyhow::Result<()> {
    let Some(name) = run_as else {
        return Ok(());
    };
    if !Uid::effective().is_root() {
        return Ok(());
    }
    let user = RunAs::lookup(name)?;
    if !data_dir.exists() {
        crate::serve::create_data_dir(data_dir)?;
    }
    // Left by root before run_as was configured: give it over, as serve
    // would at its next start; otherwise only the top is looked at.
    let owner = std::fs::metadata(data_dir)
        .with_context(|| format!("data dir {}", data_dir.display()))?
        .uid();
    if owner != user.uid.as_raw() {
        chown_tree(data_dir, user.uid, user.gid)
            .with_context(|| format!("giving {} to {}", data_dir.display(), user.name))?;
    }
    user.drop_ids()
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
