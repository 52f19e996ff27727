//! Query-string parameters.

use edgekv_core::percent_decode;

use crate::ApiError;

/// The decoded parameters of a query string. The first occurrence of a name wins.
#[derive(Debug, Default)]
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    /// Parses `raw` (without the `?`). A malformed escape is a 400, not a silent skip.
    pub(crate) fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let mut pairs = Vec::new();
        for part in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            let decode = |s: &str| {
                percent_decode(s, true).ok_or_else(|| {
                    ApiError::BadRequest("could not URL-decode the query string".into())
                })
            };
            pairs.push((decode(name)?, decode(value)?));
        }
        Ok(Query(pairs))
    }

    /// The value of `name`, if present.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// A whole number in `min..=max`, `default` when absent.
    pub(crate) fn number(
        &self,
        name: &str,
        min: u64,
        max: u64,
        default: u64,
    ) -> Result<u64, ApiError> {
        let Some(raw) = self.get(name) else { return Ok(default) };
        let parsed = raw.parse::<u64>().ok().or_else(|| {
            let f = raw.parse::<f64>().ok()?;
            (f.fract() == 0.0 && f >= 0.0 && f <= u64::MAX as f64).then_some(f as u64)
        });
        parsed.filter(|n| (min..=max).contains(n)).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "Invalid {name} of {raw}. Please specify an integer between {min} and {max}."
            ))
        })
    }

    /// One of `allowed`, or `None` when absent.
    pub(crate) fn choice(&self, name: &str, allowed: &[&str]) -> Result<Option<&str>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) if allowed.contains(&v) => Ok(Some(v)),
            Some(v) => Err(ApiError::BadRequest(format!(
                "Invalid {name} of {v}. Use one of: {}.",
                allowed.join(", ")
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decodes_and_bounds() {
        let q = Query::parse(Some("prefix=a+b%2Fc&limit=10&limit=20&flag&page=2.0")).unwrap();
        assert_eq!(q.get("prefix"), Some("a b/c"));
        assert_eq!(q.get("flag"), Some(""));
        assert_eq!(q.number("limit", 10, 1000, 1000).unwrap(), 10);
        assert_eq!(q.number("page", 1, 9, 1).unwrap(), 2);
        assert_eq!(q.number("missing", 1, 9, 7).unwrap(), 7);
        assert!(q.number("limit", 11, 1000, 1000).is_err());
        assert!(Query::parse(Some("a=%zz")).is_err());
        assert_eq!(q.choice("prefix", &["x"]).unwrap_err().status().as_u16(), 400);
    }
}
