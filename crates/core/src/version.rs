//! The version every replicated item carries: (HLC timestamp, origin region).

use std::fmt;
use std::str::FromStr;

use crate::{RegionId, Timestamp};

/// The LWW version of a write. The derived order compares the timestamp first and the origin
/// region second, so it is total: two regions never issue the same (timestamp, region) pair
/// because each region's HLC is strictly monotonic.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Version {
    /// When the write was accepted, on the origin's hybrid logical clock.
    pub ts: Timestamp,
    /// The region that accepted the write.
    pub origin: RegionId,
}

impl Version {
    /// A version issued at `ts` by `origin`.
    pub fn new(ts: Timestamp, origin: RegionId) -> Self {
        Version { ts, origin }
    }
}

/// Rendered as 16 hex digits of the timestamp, `-`, then the region: the form of the
/// `edgekv-version` header. Zero-padded hex sorts as text the way versions of one region sort.
impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}-{}", self.ts.0, self.origin)
    }
}

/// A string that is not a rendered [`Version`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid version {0:?}: expected 16 hex digits, '-', and a region name")]
pub struct ParseVersionError(pub String);

impl FromStr for Version {
    type Err = ParseVersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseVersionError(s.to_owned());
        let (ts, origin) = s.split_once('-').ok_or_else(err)?;
        if ts.len() != 16 {
            return Err(err());
        }
        let ts = u64::from_str_radix(ts, 16).map_err(|_| err())?;
        let origin = origin.parse().map_err(|_| err())?;
        Ok(Version { ts: Timestamp(ts), origin })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(ts: u64, region: &str) -> Version {
        Version::new(Timestamp(ts), region.parse().unwrap())
    }

    #[test]
    fn timestamp_decides_and_region_breaks_ties() {
        assert!(v(1, "wnam") < v(2, "apac"));
        assert!(v(2, "apac") < v(2, "enam"));
        assert_eq!(v(2, "enam"), v(2, "enam"));
    }

    #[test]
    fn renders_and_parses_back() {
        let version = v(0x0001_8c2e_55aa_0003, "weur");
        assert_eq!(version.to_string(), "00018c2e55aa0003-weur");
        assert_eq!(version.to_string().parse::<Version>().unwrap(), version);
        for bad in
            ["", "12-weur", "00018c2e55aa0003", "00018c2e55aa000g-weur", "00018c2e55aa0003-WEUR"]
        {
            assert!(bad.parse::<Version>().is_err(), "{bad}");
        }
    }
}
