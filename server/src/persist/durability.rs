//! `--durability sync | periodic=<ms> | none`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// When state reaches the disk, and whether replies wait for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Durability {
    /// Default. A 2xx to PUBLISH/SUBSCRIBE (and a subscription state change) is sent only
    /// after its commit; commits are grouped per shard.
    #[default]
    Sync,
    /// Write-behind every period (OpenSIPS `db_update_period`): replies do not wait; a
    /// crash loses at most that much.
    Periodic(Duration),
    /// Memory only: nothing is written, nothing survives a restart.
    None,
}

impl Durability {
    /// Whether the core must hold 2xx replies until `handle_persisted`
    /// (`core::Config::durability_gate`).
    pub fn gates_replies(self) -> bool {
        matches!(self, Durability::Sync)
    }

    /// Whether a data directory / LMDB environment is needed at all.
    pub fn writes(self) -> bool {
        !matches!(self, Durability::None)
    }
}

/// Bad `--durability` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseDurabilityError(pub String);

impl fmt::Display for ParseDurabilityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid durability {:?}: expected `sync`, `periodic=<ms>` (1..=60000) or `none`",
            self.0
        )
    }
}

impl std::error::Error for ParseDurabilityError {}

/// Longest write-behind period accepted.
pub const MAX_PERIOD_MS: u64 = 60_000;

impl FromStr for Durability {
    type Err = ParseDurabilityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseDurabilityError(s.to_owned());
        match s {
            "sync" => Ok(Durability::Sync),
            "none" => Ok(Durability::None),
            _ => {
                let ms: u64 = s
                    .strip_prefix("periodic=")
                    .ok_or_else(err)?
                    .parse()
                    .map_err(|_| err())?;
                if ms == 0 || ms > MAX_PERIOD_MS {
                    return Err(err());
                }
                Ok(Durability::Periodic(Duration::from_millis(ms)))
            }
        }
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Durability::Sync => f.write_str("sync"),
            Durability::Periodic(d) => write!(f, "periodic={}", d.as_millis()),
            Durability::None => f.write_str("none"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for s in ["sync", "none", "periodic=250"] {
            assert_eq!(s.parse::<Durability>().unwrap().to_string(), s);
        }
        assert_eq!(
            "periodic=5".parse::<Durability>(),
            Ok(Durability::Periodic(Duration::from_millis(5)))
        );
        for bad in [
            "",
            "Sync",
            "periodic",
            "periodic=",
            "periodic=0",
            "periodic=x",
            "periodic=60001",
        ] {
            assert!(bad.parse::<Durability>().is_err(), "{bad}");
        }
        assert!(Durability::Sync.gates_replies());
        assert!(!Durability::Periodic(Duration::from_millis(1)).gates_replies());
    }
}
