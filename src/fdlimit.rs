//! File descriptors: how many the process may open, and how they are shared
//! between clients and storage.
//!
//! Every client connection holds a descriptor. If clients may take them
//! all, storage cannot open its next journal or table file, the engine
//! stops accepting writes and only a restart helps. So, as Redis does, the
//! soft `RLIMIT_NOFILE` is raised toward the hard limit at start, and
//! `maxclients` is lowered to what the limit leaves after a reserve for
//! storage, cluster links and metrics.

/// Descriptors kept for everything that is not a client: storage's
/// journals and the files it writes while flushing and compacting, the
/// cluster port's links, the metrics endpoint, the runtime's own
/// (epoll, eventfd), stdio and the listeners.
pub const RESERVED_FDS: u64 = 64;

/// Table files storage keeps open at most when descriptors are plentiful
/// (the engine's own default).
pub const MAX_STORAGE_CACHED_FILES: u64 = 900;

/// Fewest cached table files the storage engine accepts.
pub const MIN_STORAGE_CACHED_FILES: u64 = 16;

/// How the descriptor limit is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdBudget {
    /// The soft limit the process runs with.
    pub limit: u64,
    /// Clients allowed at once.
    pub maxclients: usize,
    /// Table files storage may keep open.
    pub storage_cached_files: usize,
}

/// Too few descriptors to run at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the open files limit ({limit}) leaves no room for clients after {reserved} descriptors for storage and the cluster; raise 'ulimit -n'"
)]
pub struct TooFewFds {
    /// The soft limit.
    pub limit: u64,
    /// What storage and the rest need.
    pub reserved: u64,
}

/// The limit to ask for so that `maxclients` clients fit beside storage.
pub fn wanted_limit(maxclients: usize) -> u64 {
    (maxclients as u64)
        .saturating_add(MAX_STORAGE_CACHED_FILES)
        .saturating_add(RESERVED_FDS)
}

/// Shares `limit` descriptors: storage's cache gets up to an eighth (within
/// the engine's bounds), [`RESERVED_FDS`] stay free, clients get the rest,
/// at most `maxclients`.
pub fn budget(limit: u64, maxclients: usize) -> Result<FdBudget, TooFewFds> {
    let storage = (limit / 8).clamp(MIN_STORAGE_CACHED_FILES, MAX_STORAGE_CACHED_FILES);
    let reserved = storage + RESERVED_FDS;
    let room = limit.saturating_sub(reserved);
    if room == 0 {
        return Err(TooFewFds { limit, reserved });
    }
    Ok(FdBudget {
        limit,
        maxclients: usize::try_from(room).map_or(maxclients, |room| room.min(maxclients)),
        storage_cached_files: storage as usize,
    })
}

/// Raises the soft limit toward the hard one (never above what
/// `maxclients` needs) and shares the result. Logs one line if
/// `maxclients` had to be lowered, as Redis does.
pub fn apply(maxclients: usize) -> Result<FdBudget, TooFewFds> {
    let before = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(0, |(soft, _)| soft);
    let limit = match rlimit::increase_nofile_limit(wanted_limit(maxclients)) {
        Ok(limit) => {
            if limit > before {
                tracing::info!("raised the open files limit from {before} to {limit}");
            }
            limit
        }
        Err(e) => {
            tracing::warn!("cannot read or raise the open files limit: {e}");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    };
    let budget = budget(limit, maxclients)?;
    if budget.maxclients < maxclients {
        tracing::warn!(
            "maxclients lowered to {} (requested {maxclients}): the open files limit is {limit} and {} descriptors are kept for storage and the cluster; raise 'ulimit -n' for more clients",
            budget.maxclients,
            limit - budget.maxclients as u64,
        );
    }
    Ok(budget)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plenty_of_descriptors_keep_maxclients() {
        let b = budget(wanted_limit(10_000), 10_000).expect("fits");
        assert_eq!(b.maxclients, 10_000);
        assert_eq!(b.storage_cached_files, 900);
    }

    #[test]
    fn a_small_limit_lowers_maxclients_and_keeps_a_reserve() {
        let b = budget(256, 10_000).expect("fits");
        assert_eq!(b.storage_cached_files, 32);
        assert_eq!(b.maxclients, 256 - 32 - 64);
        assert!(b.maxclients as u64 + b.storage_cached_files as u64 + RESERVED_FDS <= 256);
        // A smaller request than the room is kept as asked.
        assert_eq!(budget(256, 10).expect("fits").maxclients, 10);
    }

    #[test]
    fn too_small_a_limit_is_refused() {
        assert_eq!(
            budget(80, 10),
            Err(TooFewFds {
                limit: 80,
                reserved: 80
            })
        );
        assert!(budget(81, 10).is_ok());
    }
}
