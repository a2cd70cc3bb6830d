//! `--durability sync | periodic=<ms>|periodic=<s>s | none`.

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
            "invalid durability {:?}: expected `sync`, `periodic=<ms>` or `periodic=<seconds>s` \
             (1 ms ..= {} s) or `none`",
            self.0,
            MAX_PERIOD_MS / 1000
        )
    }
}

impl std::error::Error for ParseDurabilityError {}

/// Longest write-behind period accepted: an hour (OpenSIPS's `db_update_period` default is
/// 100 s). The period bounds staleness only: a shard commits earlier once enough ops wait
/// (`driver::PERIODIC_EARLY_OPS`), so memory stays bounded whatever the period.
pub const MAX_PERIOD_MS: u64 = 3_600_000;

impl FromStr for Durability {
    type Err = ParseDurabilityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseDurabilityError(s.to_owned());
        match s {
            "sync" => Ok(Durability::Sync),
            "none" => Ok(Durability::None),
            _ => {
                let v = s.strip_prefix("periodic=").ok_or_else(err)?;
                let ms: u64 = match v.strip_suffix('s') {
                    Some(secs) => secs
                        .parse::<u64>()
                        .map_err(|_| err())?
                        .checked_mul(1000)
                        .ok_or_else(err)?,
                    None => v.parse().map_err(|_| err())?,
                };
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
        assert_eq!(
            "periodic=100s".parse::<Durability>(),
            Ok(Durability::Periodic(Duration::from_secs(100)))
        );
        assert_eq!(
            "periodic=3600000".parse::<Durability>(),
            Ok(Durability::Periodic(Duration::from_secs(3600)))
        );
        for bad in [
            "",
            "Sync",
            "periodic",
            "periodic=",
            "periodic=0",
            "periodic=x",
            "periodic=3600001",
            "periodic=3601s",
            "periodic=0s",
            "periodic=s",
            "periodic=-1s",
            "periodic=99999999999999999999s",
        ] {
            assert!(bad.parse::<Durability>().is_err(), "{bad}");
        }
        assert!(Durability::Sync.gates_replies());
        assert!(!Durability::Periodic(Duration::from_millis(1)).gates_replies());
    }
}
