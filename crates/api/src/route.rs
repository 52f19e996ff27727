//! Routing on the raw request path.
//!
//! Workers KV keys may contain `/`, and older SDKs put them in the path unencoded, so a key is
//! everything after `/values/` or `/metadata/`, taken from the raw path and percent-decoded only
//! after routing. A general-purpose router would decode first (turning `%2F` into a separator) or
//! stop at the next `/`; this one is small enough to be exhaustive and pure.

use axum::http::Method;
use edgekv_core::decode_key;
use edgekv_core::{AccountId, NamespaceId};

use crate::ApiError;

/// The API's base path, as the SDKs expect it in `base_url`.
pub const BASE_PATH: &str = "/client/v4";

/// One of the 14 Workers KV operations, with its path parameters parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /accounts/{a}/storage/kv/namespaces`
    ListNamespaces(AccountId),
    /// `POST /accounts/{a}/storage/kv/namespaces`
    CreateNamespace(AccountId),
    /// `GET .../namespaces/{ns}`
    GetNamespace(AccountId, NamespaceId),
    /// `PUT .../namespaces/{ns}`
    RenameNamespace(AccountId, NamespaceId),
    /// `DELETE .../namespaces/{ns}`
    DeleteNamespace(AccountId, NamespaceId),
    /// `GET .../namespaces/{ns}/keys`
    ListKeys(AccountId, NamespaceId),
    /// `GET .../namespaces/{ns}/values/{key}`
    GetValue(AccountId, NamespaceId, KeyPath),
    /// `PUT .../namespaces/{ns}/values/{key}`
    PutValue(AccountId, NamespaceId, KeyPath),
    /// `DELETE .../namespaces/{ns}/values/{key}`
    DeleteValue(AccountId, NamespaceId, KeyPath),
    /// `GET .../namespaces/{ns}/metadata/{key}`
    GetMetadata(AccountId, NamespaceId, KeyPath),
    /// `PUT .../namespaces/{ns}/bulk`
    BulkWrite(AccountId, NamespaceId),
    /// `POST .../namespaces/{ns}/bulk/delete`, and the deprecated `DELETE .../namespaces/{ns}/bulk`
    /// that wrangler still sends.
    BulkDelete(AccountId, NamespaceId),
    /// `POST .../namespaces/{ns}/bulk/get`
    BulkGet(AccountId, NamespaceId),
}

impl Route {
    /// The operation's name in metrics and logs.
    pub fn op(&self) -> &'static str {
        match self {
            Route::ListNamespaces(..) => "list_namespaces",
            Route::CreateNamespace(..) => "create_namespace",
            Route::GetNamespace(..) => "get_namespace",
            Route::RenameNamespace(..) => "rename_namespace",
            Route::DeleteNamespace(..) => "delete_namespace",
            Route::ListKeys(..) => "list_keys",
            Route::GetValue(..) => "get_value",
            Route::PutValue(..) => "put_value",
            Route::DeleteValue(..) => "delete_value",
            Route::GetMetadata(..) => "get_metadata",
            Route::BulkWrite(..) => "bulk_write",
            Route::BulkDelete(..) => "bulk_delete",
            Route::BulkGet(..) => "bulk_get",
        }
    }

    /// Whether the operation changes state, and so is acknowledged only once durable.
    pub fn writes(&self) -> bool {
        matches!(
            self,
            Route::CreateNamespace(..)
                | Route::RenameNamespace(..)
                | Route::DeleteNamespace(..)
                | Route::PutValue(..)
                | Route::DeleteValue(..)
                | Route::BulkWrite(..)
                | Route::BulkDelete(..)
        )
    }
}

/// The raw key segment of a path. It is decoded and validated by the handler, after
/// authentication, so that an unauthenticated client learns nothing about key rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPath(pub String);

impl KeyPath {
    /// The decoded, validated key name.
    pub fn decode(&self) -> Result<String, ApiError> {
        Ok(decode_key(&self.0)?)
    }
}

/// Maps a method and raw path to a route, or [`ApiError::NoRoute`].
pub fn route(method: &Method, raw_path: &str) -> Result<Route, ApiError> {
    let rest = raw_path.strip_prefix(BASE_PATH).ok_or(ApiError::NoRoute)?;
    let rest = rest.strip_prefix("/accounts/").ok_or(ApiError::NoRoute)?;
    let (account, rest) = rest.split_once('/').ok_or(ApiError::NoRoute)?;
    let account = AccountId::parse(account).ok_or(ApiError::NoRoute)?;
    let rest = rest.strip_prefix("storage/kv/namespaces").ok_or(ApiError::NoRoute)?;

    if rest.is_empty() || rest == "/" {
        return match *method {
            Method::GET => Ok(Route::ListNamespaces(account)),
            Method::POST => Ok(Route::CreateNamespace(account)),
            _ => Err(ApiError::NoRoute),
        };
    }
    let rest = rest.strip_prefix('/').ok_or(ApiError::NoRoute)?;
    let (namespace, rest) = rest.split_once('/').unwrap_or((rest, ""));
    let namespace = NamespaceId::parse(namespace).ok_or(ApiError::NoRoute)?;

    // Key routes first: their tail is the key, whatever it contains.
    if let Some(key) = rest.strip_prefix("values/") {
        let key = KeyPath(key.to_owned());
        return match *method {
            Method::GET => Ok(Route::GetValue(account, namespace, key)),
            Method::PUT => Ok(Route::PutValue(account, namespace, key)),
            Method::DELETE => Ok(Route::DeleteValue(account, namespace, key)),
            _ => Err(ApiError::NoRoute),
        };
    }
    if let Some(key) = rest.strip_prefix("metadata/") {
        return match *method {
            Method::GET => Ok(Route::GetMetadata(account, namespace, KeyPath(key.to_owned()))),
            _ => Err(ApiError::NoRoute),
        };
    }
    let route = match (method.clone(), rest.trim_end_matches('/')) {
        (Method::GET, "") => Route::GetNamespace(account, namespace),
        (Method::PUT, "") => Route::RenameNamespace(account, namespace),
        (Method::DELETE, "") => Route::DeleteNamespace(account, namespace),
        (Method::GET, "keys") => Route::ListKeys(account, namespace),
        (Method::PUT, "bulk") => Route::BulkWrite(account, namespace),
        (Method::DELETE, "bulk") | (Method::POST, "bulk/delete") => {
            Route::BulkDelete(account, namespace)
        }
        (Method::POST, "bulk/get") => Route::BulkGet(account, namespace),
        _ => return Err(ApiError::NoRoute),
    };
    Ok(route)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: &str = "0f2ac74b498b48028cb68387c421e279";

    fn path(tail: &str) -> String {
        format!("/client/v4/accounts/acct/storage/kv/namespaces{tail}")
    }

    fn ids() -> (AccountId, NamespaceId) {
        (AccountId::parse("acct").unwrap(), NamespaceId::parse(NS).unwrap())
    }

    #[test]
    fn routes_every_operation() {
        let (a, n) = ids();
        let key = |k: &str| KeyPath(k.into());
        let cases = [
            (Method::GET, path(""), Route::ListNamespaces(a.clone())),
            (Method::POST, path(""), Route::CreateNamespace(a.clone())),
            (Method::GET, path(&format!("/{NS}")), Route::GetNamespace(a.clone(), n.clone())),
            (Method::PUT, path(&format!("/{NS}")), Route::RenameNamespace(a.clone(), n.clone())),
            (Method::DELETE, path(&format!("/{NS}")), Route::DeleteNamespace(a.clone(), n.clone())),
            (Method::GET, path(&format!("/{NS}/keys")), Route::ListKeys(a.clone(), n.clone())),
            (
                Method::GET,
                path(&format!("/{NS}/values/k")),
                Route::GetValue(a.clone(), n.clone(), key("k")),
            ),
            (
                Method::PUT,
                path(&format!("/{NS}/values/k")),
                Route::PutValue(a.clone(), n.clone(), key("k")),
            ),
            (
                Method::DELETE,
                path(&format!("/{NS}/values/k")),
                Route::DeleteValue(a.clone(), n.clone(), key("k")),
            ),
            (
                Method::GET,
                path(&format!("/{NS}/metadata/k")),
                Route::GetMetadata(a.clone(), n.clone(), key("k")),
            ),
            (Method::PUT, path(&format!("/{NS}/bulk")), Route::BulkWrite(a.clone(), n.clone())),
            (
                Method::POST,
                path(&format!("/{NS}/bulk/delete")),
                Route::BulkDelete(a.clone(), n.clone()),
            ),
            (Method::DELETE, path(&format!("/{NS}/bulk")), Route::BulkDelete(a.clone(), n.clone())),
            (Method::POST, path(&format!("/{NS}/bulk/get")), Route::BulkGet(a, n)),
        ];
        for (method, path, expected) in cases {
            assert_eq!(route(&method, &path), Ok(expected), "{method} {path}");
        }
    }

    #[test]
    fn the_key_is_the_raw_rest_of_the_path() {
        let (a, n) = ids();
        for raw in ["a/b/c", "a%2Fb", "values/x", "bulk", "", "a//b/", "%zz"] {
            assert_eq!(
                route(&Method::GET, &path(&format!("/{NS}/values/{raw}"))),
                Ok(Route::GetValue(a.clone(), n.clone(), KeyPath(raw.into())))
            );
        }
    }

    #[test]
    fn unknown_paths_methods_and_malformed_ids_have_no_route() {
        for (method, p) in [
            (Method::GET, "/".to_string()),
            (Method::GET, "/client/v4/accounts/acct".to_string()),
            (Method::PATCH, path("")),
            (Method::POST, path(&format!("/{NS}/keys"))),
            (Method::GET, path("/not-an-id/keys")),
            (Method::GET, path(&format!("/{NS}/bogus"))),
            (Method::GET, path(&format!("/{NS}/values"))),
            (Method::GET, "/client/v4/accounts/bad!acct/storage/kv/namespaces".to_string()),
        ] {
            assert_eq!(route(&method, &p), Err(ApiError::NoRoute), "{method} {p}");
        }
    }
}
