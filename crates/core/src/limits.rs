//! The Workers KV limits EdgeKV enforces, as published by Cloudflare (see docs/api.md).
//!
//! They are constants rather than configuration because the point of EdgeKV is to fail where
//! Workers KV fails: an application that passes here should not be surprised in production.

/// Longest key name, in bytes of UTF-8 after percent-decoding.
pub const MAX_KEY_BYTES: usize = 512;
/// Largest value: 25 MiB.
pub const MAX_VALUE_BYTES: usize = 25 * 1024 * 1024;
/// Largest metadata, measured as compact serialized JSON.
pub const MAX_METADATA_BYTES: usize = 1024;
/// Most pairs in one bulk write or keys in one bulk delete.
pub const MAX_BULK_ITEMS: usize = 10_000;
/// Largest bulk write or bulk delete request body: 100 MiB.
pub const MAX_BULK_BODY_BYTES: usize = 100 * 1024 * 1024;
/// Most keys in one bulk get.
pub const MAX_BULK_GET_KEYS: usize = 100;
/// Largest total of values one bulk get may return: 25 MiB.
pub const MAX_BULK_GET_TOTAL_BYTES: usize = 25 * 1024 * 1024;
/// Smallest, largest and default `limit` of a key listing.
pub const MIN_LIST_LIMIT: usize = 10;
/// See [`MIN_LIST_LIMIT`].
pub const MAX_LIST_LIMIT: usize = 1000;
/// See [`MIN_LIST_LIMIT`].
pub const DEFAULT_LIST_LIMIT: usize = 1000;
/// Smallest TTL, and smallest distance into the future of an absolute expiration, in seconds.
pub const MIN_EXPIRATION_TTL_SECS: u64 = 60;
/// Latest absolute expiry, in epoch seconds: 2^53 - 1, JavaScript's `Number.MAX_SAFE_INTEGER`.
/// Expirations are returned as JSON numbers; above this one a JavaScript client (the official
/// TypeScript SDK among them) would read back a different number than the one stored.
pub const MAX_EXPIRATION_SECS: u64 = (1 << 53) - 1;
/// Longest namespace title, in characters.
pub const MAX_TITLE_CHARS: usize = 512;
/// Most live namespaces in one account.
pub const MAX_NAMESPACES_PER_ACCOUNT: usize = 1000;
/// Largest `per_page` of a namespace listing.
pub const MAX_NAMESPACES_PER_PAGE: usize = 1000;
/// Default `per_page` of a namespace listing.
pub const DEFAULT_NAMESPACES_PER_PAGE: usize = 20;
/// Largest request body of the small JSON endpoints (namespace create/rename, bulk get).
pub const MAX_SMALL_JSON_BYTES: usize = 1024 * 1024;
