//! Credentials: a set of accepted tokens or secrets, compared in constant time.
//!
//! A configured list can hold blank entries by accident (`EDGEKV_ADMIN_TOKEN='secret,'` is a
//! trailing-comma typo that yields `["secret", ""]`). An empty entry must never become an
//! accepted credential: HTTP/2 keeps the trailing space of `Authorization: Bearer `, so a
//! request with an empty token would match it. So blank entries are dropped here, once, for
//! every credential EdgeKV checks (API tokens, admin tokens, the cluster secret), and an empty
//! candidate is refused whatever the set holds.

/// Accepted tokens. Empty means nothing is accepted.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Tokens(Vec<String>);

impl std::fmt::Debug for Tokens {
    /// Never prints the tokens themselves.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} configured)", self.0.len())
    }
}

impl Tokens {
    /// The given tokens, each trimmed, blank ones dropped.
    pub fn new<I, S>(tokens: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Tokens(
            tokens
                .into_iter()
                .map(|t| t.as_ref().trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect(),
        )
    }

    /// Whether no token is configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The tokens.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// The first token (to show which one a development default is).
    pub fn first(&self) -> Option<&str> {
        self.0.first().map(String::as_str)
    }

    /// Whether `candidate` is one of the tokens. Every token is compared, each in time that
    /// depends only on the lengths, so the response time does not tell how much of a guess
    /// was right. An empty candidate is never accepted.
    pub fn accepts(&self, candidate: &str) -> bool {
        if candidate.is_empty() {
            return false;
        }
        self.0.iter().fold(false, |found, token| found | constant_time_eq(token, candidate))
    }
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_entries_are_dropped_and_an_empty_candidate_is_refused() {
        let tokens = Tokens::new(["realsecret", "", " ", " other "]);
        assert!(tokens.accepts("realsecret"));
        assert!(tokens.accepts("other"));
        for refused in ["", " ", "realsecre", "realsecrets", "Realsecret"] {
            assert!(!tokens.accepts(refused), "{refused:?}");
        }
        assert!(Tokens::new([" , "]).accepts(",") && !Tokens::new([" , "]).accepts(""));
        assert!(Tokens::new(["", "  "]).is_empty());
        assert!(!Tokens::new(Vec::<String>::new()).accepts(""));
        assert_eq!(format!("{tokens:?}"), "Tokens(2 configured)");
    }
}
