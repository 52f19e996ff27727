//! Key names: percent-decoding of the raw path segment and the Workers KV naming rules.

use crate::limits::MAX_KEY_BYTES;

/// Why a key name was refused. The messages are the ones Workers KV uses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The raw path segment has a bad `%` escape or decodes to bytes that are not UTF-8.
    #[error("Could not URL-decode key name")]
    BadEncoding,
    /// The key is the empty string.
    #[error("Key names must not be empty")]
    Empty,
    /// The key is `.` or `..`, which URL normalisation would eat.
    #[error("Illegal key name \"{0}\". Please use a different name.")]
    Illegal(String),
    /// The key is longer than [`MAX_KEY_BYTES`].
    #[error("UTF-8 encoded length of {0} exceeds key length limit of {MAX_KEY_BYTES}.")]
    TooLong(usize),
}

/// Decodes a raw (still percent-encoded) key taken from the request path, then validates it.
///
/// Routing happens on the raw path and decoding only afterwards, so `a%2Fb` and `a/b` both name
/// the key `a/b`: newer SDKs encode `/` inside a key, older ones send it as is. `+` is a literal
/// plus in a path, not a space.
pub fn decode_key(raw: &str) -> Result<String, KeyError> {
    let key = percent_decode(raw, false).ok_or(KeyError::BadEncoding)?;
    validate_key(&key)?;
    Ok(key)
}

/// Percent-decodes `raw` into UTF-8 text, or `None` if an escape is malformed or the bytes are
/// not UTF-8. With `plus_as_space`, `+` decodes to a space as in query strings
/// (`application/x-www-form-urlencoded`); in a path it is a literal plus.
pub fn percent_decode(raw: &str, plus_as_space: bool) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = hex_value(*bytes.get(i + 1)?)?;
                let lo = hex_value(*bytes.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' if plus_as_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Checks a decoded key name against the Workers KV rules.
pub fn validate_key(key: &str) -> Result<(), KeyError> {
    match key {
        "" => Err(KeyError::Empty),
        "." | ".." => Err(KeyError::Illegal(key.to_owned())),
        _ if key.len() > MAX_KEY_BYTES => Err(KeyError::TooLong(key.len())),
        _ => Ok(()),
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes_and_keeps_raw_slashes() {
        assert_eq!(decode_key("a%2Fb").unwrap(), "a/b");
        assert_eq!(decode_key("a/b").unwrap(), "a/b");
        assert_eq!(decode_key("a+b%20c").unwrap(), "a+b c");
        assert_eq!(decode_key("%E2%9C%93:!").unwrap(), "✓:!");
        assert_eq!(decode_key("100%25").unwrap(), "100%");
        assert_eq!(decode_key("%2e%2E").unwrap_err(), KeyError::Illegal("..".into()));
    }

    #[test]
    fn query_decoding_turns_plus_into_space() {
        assert_eq!(percent_decode("a+b%2Bc", true).as_deref(), Some("a b+c"));
        assert_eq!(percent_decode("a+b", false).as_deref(), Some("a+b"));
        assert_eq!(percent_decode("%zz", true), None);
    }

    #[test]
    fn refuses_bad_escapes_and_non_utf8() {
        for raw in ["%", "%2", "%zz", "a%g0", "%FF", "%C3%28"] {
            assert_eq!(decode_key(raw), Err(KeyError::BadEncoding), "{raw}");
        }
    }

    #[test]
    fn enforces_the_naming_rules() {
        assert_eq!(validate_key(""), Err(KeyError::Empty));
        assert_eq!(validate_key("."), Err(KeyError::Illegal(".".into())));
        assert_eq!(validate_key("..."), Ok(()));
        assert_eq!(validate_key(&"k".repeat(512)), Ok(()));
        assert_eq!(validate_key(&"k".repeat(513)), Err(KeyError::TooLong(513)));
        // The limit is in bytes, not characters: 171 three-byte characters are 513 bytes.
        assert_eq!(validate_key(&"✓".repeat(171)), Err(KeyError::TooLong(513)));
        assert_eq!(validate_key(&"✓".repeat(170)), Ok(()));
    }
}
