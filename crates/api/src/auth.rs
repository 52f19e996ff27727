//! Credentials: API tokens, accepted the two ways Cloudflare accepts them.

use axum::http::HeaderMap;
use edgekv_core::Tokens;

/// The token a node accepts when it listens only on loopback and no token is configured, so
/// that a local cluster works with zero setup. A node on any other address refuses to start
/// without a configured token (see the node crate), so this token never guards anything
/// reachable from another machine.
pub const DEV_TOKEN: &str = "edgekv-dev-token";

/// The set of accepted API tokens.
///
/// A token is accepted as `Authorization: Bearer <token>`, or as `X-Auth-Key: <token>` together
/// with any non-empty `X-Auth-Email` (the legacy key pair the SDK test suites use). A token
/// grants access to every account; accounts are isolated from each other by the path, not by the
/// token, which matches how local development against Workers KV uses one token.
#[derive(Clone, Debug)]
pub struct Auth {
    tokens: Tokens,
}

impl Auth {
    /// Accepts exactly `tokens` (blank ones are dropped).
    pub fn new(tokens: impl IntoIterator<Item = String>) -> Self {
        Auth { tokens: Tokens::new(tokens) }
    }

    /// Whether the request carries an accepted credential.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        if let Some(token) = header("authorization").and_then(bearer_token) {
            return self.tokens.accepts(token);
        }
        match (header("x-auth-email"), header("x-auth-key")) {
            (Some(email), Some(key)) if !email.trim().is_empty() => self.tokens.accepts(key.trim()),
            _ => false,
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header value (any case of "Bearer").
pub fn bearer_token(value: &str) -> Option<&str> {
    let value = value.trim();
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn accepts_bearer_tokens_and_the_key_pair() {
        let auth = Auth::new(["t1".to_string(), "t2".to_string()]);
        assert!(auth.allows(&headers(&[("authorization", "Bearer t2")])));
        assert!(auth.allows(&headers(&[("authorization", "bearer t1")])));
        assert!(auth.allows(&headers(&[("x-auth-email", "a@b.c"), ("x-auth-key", "t1")])));
    }

    #[test]
    fn refuses_everything_else() {
        let auth = Auth::new(["t1".to_string(), String::new()]);
        for h in [
            headers(&[]),
            headers(&[("authorization", "Bearer t")]),
            headers(&[("authorization", "Bearer ")]),
            headers(&[("authorization", "Bearer")]),
            headers(&[("authorization", "Bearer  ")]),
            headers(&[("authorization", "Basic t1")]),
            headers(&[("authorization", "t1")]),
            headers(&[("x-auth-key", "t1")]),
            headers(&[("x-auth-email", " "), ("x-auth-key", "t1")]),
            headers(&[
                ("authorization", "Bearer wrong"),
                ("x-auth-email", "a"),
                ("x-auth-key", "t1"),
            ]),
        ] {
            assert!(!auth.allows(&h), "{h:?}");
        }
    }
}
