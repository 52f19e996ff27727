//! Region names, stored inline so that a [`crate::Version`] is `Copy` and cheap to compare.

use std::fmt;
use std::str::FromStr;

/// Longest region name in bytes.
pub(crate) const MAX_REGION_BYTES: usize = 16;

/// The name of a region (`wnam`, `weur`, ...), the tie-break of the version order.
///
/// Names are 1–16 bytes of `[a-z0-9_]`, kept zero-padded in a fixed array: comparing the arrays
/// is comparing the names as strings (no name contains a NUL), and the type is `Copy`, so every
/// stored entry carries its origin without an allocation or a lookup table that regions would
/// have to agree on.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RegionId([u8; MAX_REGION_BYTES]);

/// Why a region name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid region name {0:?}: use 1 to 16 characters of a-z, 0-9 and _")]
pub struct RegionIdError(pub String);

impl RegionId {
    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        let len = self.0.iter().position(|b| *b == 0).unwrap_or(MAX_REGION_BYTES);
        // Only ASCII bytes are ever stored (checked in `from_str`).
        std::str::from_utf8(&self.0[..len]).unwrap_or_default()
    }
}

impl FromStr for RegionId {
    type Err = RegionIdError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let valid = !name.is_empty()
            && name.len() <= MAX_REGION_BYTES
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return Err(RegionIdError(name.to_owned()));
        }
        let mut bytes = [0; MAX_REGION_BYTES];
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        Ok(RegionId(bytes))
    }
}

impl fmt::Display for RegionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl fmt::Debug for RegionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RegionId({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_like_the_names() {
        let names = ["a", "ab", "apac", "b", "enam", "weur", "wnam", "z0"];
        let ids: Vec<RegionId> = names.iter().map(|n| n.parse().unwrap()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(ids[3].to_string(), "b");
    }

    #[test]
    fn refuses_bad_names() {
        for bad in ["", "WNAM", "w-nam", "a b", "abcdefghijklmnopq", "é"] {
            assert!(bad.parse::<RegionId>().is_err(), "{bad}");
        }
        assert!("abcdefghijklmnop".parse::<RegionId>().is_ok());
    }
}
