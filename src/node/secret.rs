//! Which cluster secret a node uses: the one it was given, else the one
//! saved in its data dir, else (only for a node founding a new cluster) a
//! fresh one it generates, saves and prints once.

use crate::core::{ClusterSecret, ClusterState};
use anyhow::Context as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The file in the data dir holding a generated secret.
pub const SECRET_FILE: &str = "cluster.secret";

/// What the node knows at start that decides where its secret comes from.
pub struct SecretSources<'a> {
    /// `--cluster-secret` / `--cluster-secret-file`, read.
    pub given: Option<ClusterSecret>,
    /// The data dir.
    pub data_dir: &'a Path,
    /// `--join` was given.
    pub join: bool,
    /// The cluster state saved in the data dir, if any.
    pub saved_state: Option<&'a ClusterState>,
}

/// The secret this node authenticates with; see the module comment.
///
/// Refuses to generate one where that would silently make a secret no
/// other member has: a node asked to `--join`, or one whose saved state
/// already names other members (a data dir from before secrets existed).
pub fn resolve(sources: SecretSources<'_>) -> anyhow::Result<ClusterSecret> {
    if let Some(secret) = sources.given {
        return Ok(secret);
    }
    let path = sources.data_dir.join(SECRET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let secret = ClusterSecret::new(&text)
                .with_context(|| format!("the cluster secret in {}", path.display()))?;
            tracing::info!("using the cluster secret saved in {}", path.display());
            return Ok(secret);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    let joining_new = sources.join && sources.saved_state.is_none();
    if joining_new {
        anyhow::bail!(
            "--join needs the cluster's secret: start this node with --cluster-secret <secret> or --cluster-secret-file <path>, using the secret of the cluster it joins (the founding node printed it at its first start and keeps it in its data dir as {SECRET_FILE})"
        );
    }
    if sources.saved_state.is_some_and(|s| s.members.len() > 1) {
        anyhow::bail!(
            "this node belongs to a multi-node cluster but has no cluster secret: start it with --cluster-secret <secret> or --cluster-secret-file <path>, the secret every member of the cluster uses"
        );
    }
    let secret_text = hex::encode(rand::random::<[u8; 32]>());
    write_private(&path, &secret_text)?;
    let secret = ClusterSecret::new(&secret_text).context("a generated secret is never empty")?;
    tracing::warn!(
        "generated a new cluster secret {secret_text} and saved it to {} (readable by this user only); start every node that joins this cluster with --cluster-secret-file <a copy of that file> (or --cluster-secret <that secret>); it is not printed again",
        path.display()
    );
    Ok(secret)
}

/// Writes a new file readable and writable by its owner only, durably.
fn write_private(path: &PathBuf, text: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(dir: &Path, join: bool) -> SecretSources<'_> {
        SecretSources {
            given: None,
            data_dir: dir,
            join,
            saved_state: None,
        }
    }

    #[test]
    fn generated_once_then_reused_and_private() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let first = resolve(sources(dir.path(), false))?;
        let again = resolve(sources(dir.path(), false))?;
        assert_eq!(first, again);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(SECRET_FILE))?
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let given = ClusterSecret::new("given")?;
        let mut with_flag = sources(dir.path(), false);
        with_flag.given = Some(given.clone());
        assert_eq!(resolve(with_flag)?, given);
        Ok(())
    }

    #[test]
    fn a_joining_node_without_a_secret_is_refused() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let err = resolve(sources(dir.path(), true))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("--cluster-secret"), "{err}");
        assert!(!dir.path().join(SECRET_FILE).exists());
        Ok(())
    }
}
