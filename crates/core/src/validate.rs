//! Validation of the inputs of a write other than the key: expiry, metadata, list limits and
//! namespace titles. Messages are Workers KV's own where Cloudflare documents them.

use crate::limits::{
    MAX_EXPIRATION_SECS, MAX_LIST_LIMIT, MAX_METADATA_BYTES, MAX_TITLE_CHARS,
    MIN_EXPIRATION_TTL_SECS, MIN_LIST_LIMIT,
};

/// Why a write or a listing request was refused. `crates/api` maps each variant to an HTTP status
/// and a Cloudflare error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// `expiration_ttl` is not a positive integer.
    #[error("Invalid expiration_ttl of {0}. Please specify integer greater than 0.")]
    TtlNotPositive(String),
    /// `expiration_ttl` is below 60 s.
    #[error("Invalid expiration_ttl of {0}. Expiration TTL must be at least 60.")]
    TtlTooShort(String),
    /// `expiration_ttl` puts the expiry past [`MAX_EXPIRATION_SECS`].
    #[error("Invalid expiration_ttl of {0}. Expiration TTL must not put the expiration later than {MAX_EXPIRATION_SECS} seconds since the UNIX epoch.")]
    TtlTooLong(String),
    /// `expiration` is not an integer or is not in the future.
    #[error("Invalid expiration of {0}. Please specify integer greater than the current number of seconds since the UNIX epoch.")]
    ExpirationNotFuture(String),
    /// `expiration` is less than 60 s ahead.
    #[error(
        "Invalid expiration of {0}. Expiration times must be at least 60 seconds in the future."
    )]
    ExpirationTooSoon(String),
    /// `expiration` is past [`MAX_EXPIRATION_SECS`], where JSON clients lose precision.
    #[error("Invalid expiration of {0}. Expiration times must be at most {MAX_EXPIRATION_SECS} seconds since the UNIX epoch.")]
    ExpirationTooLate(String),
    /// Metadata is not JSON.
    #[error("Metadata is not valid JSON: {0}")]
    MetadataNotJson(String),
    /// Metadata serializes to more than 1024 bytes.
    #[error("Metadata length of {0} exceeds limit of {MAX_METADATA_BYTES}.")]
    MetadataTooLarge(usize),
    /// A key listing `limit` outside 10–1000.
    #[error("Invalid limit of {0}. Please specify an integer between {MIN_LIST_LIMIT} and {MAX_LIST_LIMIT}.")]
    ListLimit(String),
    /// An empty namespace title.
    #[error("A namespace title must not be empty")]
    TitleEmpty,
    /// A namespace title over 512 characters.
    #[error("A namespace title must be at most {MAX_TITLE_CHARS} characters, got {0}")]
    TitleTooLong(usize),
}

/// Turns the `expiration` and `expiration_ttl` of a write into an absolute expiry in epoch
/// seconds, or `None` when neither is given. A TTL wins over an absolute time when both are
/// present, as on Workers KV; either must put the expiry at least 60 s ahead of `now_ms`, and
/// no later than [`MAX_EXPIRATION_SECS`] so that every client reads back the number stored.
pub fn resolve_expiration(
    expiration: Option<&str>,
    expiration_ttl: Option<&str>,
    now_ms: u64,
) -> Result<Option<u64>, ValidationError> {
    let now_secs = now_ms / 1000;
    if let Some(raw) = expiration_ttl {
        let ttl = parse_whole_number(raw)
            .filter(|ttl| *ttl > 0)
            .ok_or_else(|| ValidationError::TtlNotPositive(raw.to_owned()))?;
        if ttl < MIN_EXPIRATION_TTL_SECS {
            return Err(ValidationError::TtlTooShort(raw.to_owned()));
        }
        let at = now_secs.saturating_add(ttl);
        if at > MAX_EXPIRATION_SECS {
            return Err(ValidationError::TtlTooLong(raw.to_owned()));
        }
        return Ok(Some(at));
    }
    let Some(raw) = expiration else { return Ok(None) };
    let at = parse_whole_number(raw)
        .filter(|at| *at > now_secs)
        .ok_or_else(|| ValidationError::ExpirationNotFuture(raw.to_owned()))?;
    if at < now_secs.saturating_add(MIN_EXPIRATION_TTL_SECS) {
        return Err(ValidationError::ExpirationTooSoon(raw.to_owned()));
    }
    if at > MAX_EXPIRATION_SECS {
        return Err(ValidationError::ExpirationTooLate(raw.to_owned()));
    }
    Ok(Some(at))
}

/// Parses a non-negative whole number, also written as a JSON-style float with no fraction
/// (`300.0`), which is how some clients serialize numbers typed `number` in the API schema.
fn parse_whole_number(raw: &str) -> Option<u64> {
    let raw = raw.trim();
    if let Ok(n) = raw.parse::<u64>() {
        return Some(n);
    }
    let f = raw.parse::<f64>().ok()?;
    (f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f < u64::MAX as f64).then_some(f as u64)
}

/// Parses metadata JSON text and returns its compact serialization, the form that is stored,
/// measured against the 1024-byte limit and returned to readers. JSON `null` means no metadata.
pub fn canonical_metadata(json: &[u8]) -> Result<Option<String>, ValidationError> {
    let value: serde_json::Value = serde_json::from_slice(json)
        .map_err(|err| ValidationError::MetadataNotJson(err.to_string()))?;
    canonical_metadata_value(&value)
}

/// Like [`canonical_metadata`] for metadata that arrived already parsed (bulk writes).
pub fn canonical_metadata_value(
    value: &serde_json::Value,
) -> Result<Option<String>, ValidationError> {
    if value.is_null() {
        return Ok(None);
    }
    let compact = value.to_string();
    if compact.len() > MAX_METADATA_BYTES {
        return Err(ValidationError::MetadataTooLarge(compact.len()));
    }
    Ok(Some(compact))
}

/// Parses the `limit` of a key listing; absent means the default of 1000.
pub fn validate_list_limit(raw: Option<&str>) -> Result<usize, ValidationError> {
    let Some(raw) = raw else { return Ok(crate::limits::DEFAULT_LIST_LIMIT) };
    parse_whole_number(raw)
        .map(|n| n as usize)
        .filter(|n| (MIN_LIST_LIMIT..=MAX_LIST_LIMIT).contains(n))
        .ok_or_else(|| ValidationError::ListLimit(raw.to_owned()))
}

/// Checks a namespace title: 1 to 512 characters.
pub fn validate_title(title: &str) -> Result<(), ValidationError> {
    let chars = title.chars().count();
    if title.trim().is_empty() {
        Err(ValidationError::TitleEmpty)
    } else if chars > MAX_TITLE_CHARS {
        Err(ValidationError::TitleTooLong(chars))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_MS: u64 = 1_700_000_000_500;
    const NOW: u64 = 1_700_000_000;

    #[test]
    fn ttl_is_relative_and_wins_over_expiration() {
        assert_eq!(resolve_expiration(None, Some("60"), NOW_MS), Ok(Some(NOW + 60)));
        assert_eq!(resolve_expiration(Some("1"), Some("300"), NOW_MS), Ok(Some(NOW + 300)));
        assert_eq!(resolve_expiration(None, Some("300.0"), NOW_MS), Ok(Some(NOW + 300)));
        assert_eq!(resolve_expiration(None, None, NOW_MS), Ok(None));
    }

    #[test]
    fn ttl_limits() {
        assert_eq!(
            resolve_expiration(None, Some("59"), NOW_MS),
            Err(ValidationError::TtlTooShort("59".into()))
        );
        for bad in ["0", "-5", "abc", "1.5", ""] {
            assert_eq!(
                resolve_expiration(None, Some(bad), NOW_MS),
                Err(ValidationError::TtlNotPositive(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn ttl_may_reach_the_largest_exact_json_number_and_not_pass_it() {
        let to_max = (MAX_EXPIRATION_SECS - NOW).to_string();
        assert_eq!(resolve_expiration(None, Some(&to_max), NOW_MS), Ok(Some(MAX_EXPIRATION_SECS)));
        let past = (MAX_EXPIRATION_SECS - NOW + 1).to_string();
        assert_eq!(
            resolve_expiration(None, Some(&past), NOW_MS),
            Err(ValidationError::TtlTooLong(past.clone()))
        );
        // A TTL whose sum with now overflows u64 is refused, not wrapped or saturated.
        let huge = u64::MAX.to_string();
        assert_eq!(
            resolve_expiration(None, Some(&huge), NOW_MS),
            Err(ValidationError::TtlTooLong(huge.clone()))
        );
    }

    #[test]
    fn expiration_may_be_2_pow_53_minus_1_and_not_more() {
        let max = MAX_EXPIRATION_SECS.to_string();
        assert_eq!(max, "9007199254740991");
        assert_eq!(resolve_expiration(Some(&max), None, NOW_MS), Ok(Some(MAX_EXPIRATION_SECS)));
        for past in ["9007199254740992", "9007199254740992.0", "18446744073709551615"] {
            assert_eq!(
                resolve_expiration(Some(past), None, NOW_MS),
                Err(ValidationError::ExpirationTooLate(past.into())),
                "{past}"
            );
        }
        let message = ValidationError::ExpirationTooLate("18446744073709551615".into()).to_string();
        assert_eq!(
            message,
            "Invalid expiration of 18446744073709551615. Expiration times must be at most \
             9007199254740991 seconds since the UNIX epoch."
        );
    }

    #[test]
    fn absolute_expiration_limits() {
        let at = |s: u64| s.to_string();
        assert_eq!(resolve_expiration(Some(&at(NOW + 60)), None, NOW_MS), Ok(Some(NOW + 60)));
        assert_eq!(
            resolve_expiration(Some(&at(NOW + 59)), None, NOW_MS),
            Err(ValidationError::ExpirationTooSoon(at(NOW + 59)))
        );
        assert_eq!(
            resolve_expiration(Some(&at(NOW)), None, NOW_MS),
            Err(ValidationError::ExpirationNotFuture(at(NOW)))
        );
        assert_eq!(
            resolve_expiration(Some("soon"), None, NOW_MS),
            Err(ValidationError::ExpirationNotFuture("soon".into()))
        );
    }

    #[test]
    fn metadata_is_stored_compact_and_limited_to_1024_bytes() {
        assert_eq!(
            canonical_metadata(br#"{"a": 1,  "b": [true]}"#),
            Ok(Some(r#"{"a":1,"b":[true]}"#.into()))
        );
        assert_eq!(canonical_metadata(b"null"), Ok(None));
        assert!(matches!(canonical_metadata(b"{nope"), Err(ValidationError::MetadataNotJson(_))));
        // A JSON string of n characters serializes to n + 2 bytes.
        let at_limit = format!("\"{}\"", "x".repeat(1022));
        assert!(canonical_metadata(at_limit.as_bytes()).is_ok());
        let over = format!("\"{}\"", "x".repeat(1023));
        assert_eq!(
            canonical_metadata(over.as_bytes()),
            Err(ValidationError::MetadataTooLarge(1025))
        );
    }

    #[test]
    fn list_limit_bounds() {
        assert_eq!(validate_list_limit(None), Ok(1000));
        assert_eq!(validate_list_limit(Some("10")), Ok(10));
        assert_eq!(validate_list_limit(Some("1000")), Ok(1000));
        for bad in ["9", "1001", "0", "x", "-10"] {
            assert!(validate_list_limit(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn titles() {
        assert_eq!(validate_title(""), Err(ValidationError::TitleEmpty));
        assert_eq!(validate_title("  "), Err(ValidationError::TitleEmpty));
        assert!(validate_title(&"✓".repeat(512)).is_ok());
        assert_eq!(validate_title(&"t".repeat(513)), Err(ValidationError::TitleTooLong(513)));
    }
}
