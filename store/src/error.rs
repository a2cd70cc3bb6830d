//! Store errors: one enum, each variant says what an operator or caller can do about it.

use std::path::PathBuf;

/// Everything that can go wrong in the store.
#[derive(Debug)]
pub enum StoreError {
    /// The environment reached its configured maximum map size. Nothing of the failed
    /// transaction was written. Space returns as records expire (see `admin::cleanup`) or by
    /// raising the limit; the server answers 500 to the request and logs this.
    MapFull { path: PathBuf, max_map_size: usize },
    /// The data directory was written by a different schema version of herald.
    SchemaMismatch {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    /// A read-only open ([`Store::open_read_only`](crate::Store::open_read_only)) found an
    /// older schema version: upgrading it writes, which the server or `herald store
    /// cleanup` do when they open the directory.
    NeedsUpgrade {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    /// A stored value failed validation (bytecheck) or a key is malformed.
    Corrupt {
        table: &'static str,
        key: String,
        detail: String,
    },
    /// A key component contained a NUL byte (our key separator) or was too long for LMDB.
    InvalidKey {
        table: &'static str,
        detail: &'static str,
    },
    /// An invalid argument such as a bad regular expression or shard count.
    InvalidArgument(String),
    /// A live read (`live`) of a running server's write-ahead log was overtaken by a
    /// checkpoint on every attempt (each retires segments the read needed).
    LogBusy { path: PathBuf, attempts: u32 },
    /// LMDB / filesystem error.
    Lmdb { path: PathBuf, source: heed::Error },
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::MapFull { path, max_map_size } => write!(
                f,
                "store {} is full: map size reached the configured maximum of {} bytes \
                 (raise --map-size-max or wait for records to expire)",
                path.display(),
                max_map_size
            ),
            StoreError::SchemaMismatch {
                path,
                found,
                expected,
            } => write!(
                f,
                "store {} has schema version {found}, this herald expects {expected}; \
                 migrate or move the data directory away",
                path.display()
            ),
            StoreError::NeedsUpgrade {
                path,
                found,
                expected,
            } => write!(
                f,
                "store {} has schema version {found}, older than this herald's {expected}; \
                 it is upgraded in place when the server (or `herald store cleanup`, on a \
                 stopped server) opens it: do that first (this command only reads)",
                path.display()
            ),
            StoreError::Corrupt { table, key, detail } => {
                write!(f, "corrupt record in table `{table}` key {key:?}: {detail}")
            }
            StoreError::InvalidKey { table, detail } => {
                write!(f, "invalid key for table `{table}`: {detail}")
            }
            StoreError::InvalidArgument(msg) => write!(f, "invalid argument: {msg}"),
            StoreError::LogBusy { path, attempts } => write!(
                f,
                "the write-ahead log of {} was checkpointed while being read, {attempts} \
                 times in a row; try again",
                path.display()
            ),
            StoreError::Lmdb { path, source } => {
                write!(f, "LMDB error on {}: {source}", path.display())
            }
            StoreError::Io { path, source } => {
                write!(f, "I/O error on {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Lmdb { source, .. } => Some(source),
            StoreError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl StoreError {
    /// True when the error is the map-full condition (callers turn it into 500 + log).
    pub fn is_map_full(&self) -> bool {
        matches!(self, StoreError::MapFull { .. })
    }

    /// True when one record could not be read (its value failed validation or its key is
    /// malformed): the rest of the table is fine, so scans count it and go on instead of
    /// failing whole (one damaged record must not keep a shard from loading).
    pub fn is_unreadable_record(&self) -> bool {
        matches!(self, StoreError::Corrupt { .. })
    }
}

/// True for LMDB's MDB_MAP_FULL, however heed wrapped it.
pub(crate) fn is_mdb_map_full(e: &heed::Error) -> bool {
    matches!(e, heed::Error::Mdb(heed::MdbError::MapFull))
}

pub(crate) fn is_mdb_map_resized(e: &heed::Error) -> bool {
    matches!(e, heed::Error::Mdb(heed::MdbError::MapResized))
}
