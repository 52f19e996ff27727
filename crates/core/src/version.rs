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

    /// The version as text (see the `Display` impl), on the stack. Every read and write
    /// response carries it in a header, and the formatting machinery (padded hex, then a
    /// growing `String`) cost a PUT about a tenth of its own instructions.
    pub fn rendered(&self) -> Rendered {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = Rendered { bytes: [0; RENDERED_MAX], len: 0 };
        for (i, byte) in out.bytes[..16].iter_mut().enumerate() {
            *byte = HEX[(self.ts.0 >> (60 - 4 * i)) as usize & 0xf];
        }
        out.bytes[16] = b'-';
        let origin = self.origin.as_str().as_bytes();
        out.bytes[17..17 + origin.len()].copy_from_slice(origin);
        out.len = 17 + origin.len();
        out
    }
}

/// The longest rendered version: 16 hex digits, `-`, and the longest region name.
const RENDERED_MAX: usize = 17 + crate::region::MAX_REGION_BYTES;

/// A rendered [`Version`].
#[derive(Clone, Copy, Debug)]
pub struct Rendered {
    bytes: [u8; RENDERED_MAX],
    len: usize,
}

impl Rendered {
    /// The text.
    pub fn as_str(&self) -> &str {
        // Hex digits, '-' and a region name: ASCII, and so UTF-8, throughout.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

/// Rendered as 16 hex digits of the timestamp, `-`, then the region: the form of the
/// `edgekv-version` header. Zero-padded hex sorts as text the way versions of one region sort.
impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.rendered().as_str())
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
        // The renderer against the formatting it replaced, at the edges of both fields.
        let longest = "abcdefghijklmnop";
        for (ts, region) in [(0, "a"), (u64::MAX, longest), (0x0123_4567_89ab_cdef, "wnam")] {
            let version = v(ts, region);
            assert_eq!(version.rendered().as_str(), format!("{ts:016x}-{region}"));
        }
        for bad in
            ["", "12-weur", "00018c2e55aa0003", "00018c2e55aa000g-weur", "00018c2e55aa0003-WEUR"]
        {
            assert!(bad.parse::<Version>().is_err(), "{bad}");
        }
    }
}
