//! What stands between a region's APIs and its store, as on a Workers KV location: the edge read
//! cache and the write rate.
//!
//! Both APIs read and write through here:
//! - The binding always reads through the cache (when the region has one).
//! - The REST API reads the store directly, as Cloudflare's REST API reads central storage,
//!   unless the region is set to cache its reads too.
//! - Every local write takes its keys' write slots first.
//! - Once the write is durable, it replaces what the region's cache holds for those keys.
//!
//! Replicated writes come in below this layer, straight into the store: that is exactly why a
//! cached read can be stale.

use std::sync::Arc;

use edgekv_core::{AccountId, Entry, NamespaceId};
use edgekv_metrics::{Counter, Registry};
use edgekv_store::{KeyPage, WriteOp, WriteResult};

use crate::cache::{CacheKey, CacheStatus, Cached, EdgeCache, ListKey, DEFAULT_CACHE_TTL};
use crate::rate::WriteRate;
use crate::{ApiError, AppState};

/// How a region's API layer behaves, as set for the region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EdgeConfig {
    /// Memory of the edge read cache; `None` turns the cache off (every read reads the store).
    pub cache_memory: Option<u64>,
    /// Whether REST API reads go through the cache too.
    pub rest_cache: bool,
    /// Whether a key takes at most one write per second.
    pub write_rate_limit: bool,
}

impl EdgeConfig {
    /// As on Workers KV: a cache of 64 MiB for the binding, the REST API uncached, one write
    /// per second per key.
    pub const WORKERS_KV: EdgeConfig =
        EdgeConfig { cache_memory: Some(64 << 20), rest_cache: false, write_rate_limit: true };

    /// No cache and no write limit: every read sees the region's store, and a key takes any
    /// number of writes.
    pub const OFF: EdgeConfig =
        EdgeConfig { cache_memory: None, rest_cache: false, write_rate_limit: false };
}

impl Default for EdgeConfig {
    fn default() -> Self {
        EdgeConfig::WORKERS_KV
    }
}

/// Which API a request came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Via {
    Rest,
    Binding,
}

/// A region's edge: its cache and its write rate.
#[derive(Debug)]
pub struct Edge {
    cache: Option<EdgeCache>,
    rest_cache: bool,
    rate: Option<WriteRate>,
    rate_limited: Counter,
}

impl Edge {
    /// The edge `config` describes, its series registered in `registry`.
    pub fn new(config: EdgeConfig, registry: &Registry) -> Self {
        let rate_limited = registry
            .counter(
                "edgekv_write_rate_limited_total",
                "Writes refused with 429 because their key was written less than a second before.",
                &[],
            )
            .with(&[]);
        Edge {
            cache: config.cache_memory.map(|memory| EdgeCache::new(memory, registry)),
            rest_cache: config.rest_cache,
            rate: config.write_rate_limit.then(WriteRate::default),
            rate_limited,
        }
    }

    /// The cache reads through `via` use, if any.
    fn cache(&self, via: Via) -> Option<&EdgeCache> {
        match via {
            Via::Binding => self.cache.as_ref(),
            Via::Rest if self.rest_cache => self.cache.as_ref(),
            Via::Rest => None,
        }
    }
}

/// What a read found, and whether the cache answered it (`None`: no cache on this path).
pub(crate) struct Read<T> {
    pub(crate) found: T,
    pub(crate) status: Option<CacheStatus>,
}

/// The live entry of `key` as the region serves it through `via`, cached for `ttl_s` if read
/// from the store.
pub(crate) fn read(
    state: &AppState,
    account: &AccountId,
    ns: &NamespaceId,
    key: &str,
    ttl_s: u64,
    via: Via,
) -> Result<Read<Option<Entry>>, ApiError> {
    let from_store =
        || state.store.get(account, ns, key).map_err(|e| ApiError::from_store("get", e));
    let Some(cache) = state.edge.cache(via) else {
        return Ok(Read { found: from_store()?, status: None });
    };
    // The namespace must still exist: a cached key of a deleted namespace is not served.
    state.store.get_namespace(account, ns).map_err(|e| ApiError::from_store("get", e))?;
    let now = state.store.hlc().physical_now_ms();
    let id = CacheKey::Key(ns.clone(), key.to_owned());
    match cache.lookup(&id, now) {
        Some(Cached::Entry(entry)) => {
            Ok(Read { found: Some(entry), status: Some(CacheStatus::Hit) })
        }
        Some(_) => Ok(Read { found: None, status: Some(CacheStatus::Hit) }),
        None => {
            let found = from_store()?;
            let cached = found.clone().map_or(Cached::Missing(None), Cached::Entry);
            cache.fill(id, cached, ttl_s.saturating_mul(1000), now);
            Ok(Read { found, status: Some(CacheStatus::Miss) })
        }
    }
}

/// The live entries of `keys` as the region serves them through `via`: key by key through the
/// cache, the misses read from the store together (one consistent snapshot) and cached for
/// `ttl_s`.
pub(crate) fn read_many(
    state: &AppState,
    account: &AccountId,
    ns: &NamespaceId,
    keys: &[String],
    ttl_s: u64,
    via: Via,
) -> Result<Vec<Option<Entry>>, ApiError> {
    let from_store = |keys: &[String]| {
        state
            .store
            .get_many(account, ns, keys)
            .map_err(|e| ApiError::from_store("bulk get keys", e))
    };
    let Some(cache) = state.edge.cache(via) else { return from_store(keys) };
    state.store.get_namespace(account, ns).map_err(|e| ApiError::from_store("bulk get keys", e))?;
    let now = state.store.hlc().physical_now_ms();
    let mut found: Vec<Option<Option<Entry>>> = keys
        .iter()
        .map(|key| match cache.lookup(&CacheKey::Key(ns.clone(), key.clone()), now)? {
            Cached::Entry(entry) => Some(Some(entry)),
            _ => Some(None),
        })
        .collect();
    let missed: Vec<String> =
        keys.iter().zip(&found).filter(|(_, f)| f.is_none()).map(|(k, _)| k.clone()).collect();
    let mut read = from_store(&missed)?.into_iter();
    for (key, slot) in keys.iter().zip(found.iter_mut()) {
        if slot.is_none() {
            let entry = read.next().flatten();
            let cached = entry.clone().map_or(Cached::Missing(None), Cached::Entry);
            cache.fill(
                CacheKey::Key(ns.clone(), key.clone()),
                cached,
                ttl_s.saturating_mul(1000),
                now,
            );
            *slot = Some(entry);
        }
    }
    Ok(found.into_iter().map(Option::flatten).collect())
}

/// A page of the listing of `ns` as the region serves it through `via`; `cursor` is the
/// client's cursor, which names the cached page together with `prefix` and `limit`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn list(
    state: &AppState,
    account: &AccountId,
    ns: &NamespaceId,
    prefix: &str,
    cursor: (&str, Option<&str>),
    limit: usize,
    ttl_s: u64,
    via: Via,
) -> Result<Read<Arc<KeyPage>>, ApiError> {
    let (client_cursor, resume_after) = cursor;
    let from_store = || {
        state
            .store
            .list_keys(account, ns, prefix, resume_after, limit)
            .map(Arc::new)
            .map_err(|e| ApiError::from_store("list keys", e))
    };
    let Some(cache) = state.edge.cache(via) else {
        return Ok(Read { found: from_store()?, status: None });
    };
    state.store.get_namespace(account, ns).map_err(|e| ApiError::from_store("list keys", e))?;
    let now = state.store.hlc().physical_now_ms();
    let id = CacheKey::List(Box::new(ListKey {
        namespace: ns.clone(),
        prefix: prefix.to_owned(),
        cursor: client_cursor.to_owned(),
        limit,
    }));
    if let Some(Cached::Page(page)) = cache.lookup(&id, now) {
        // A cached page is as stale as its ttl allows, but an expiration still wins.
        let now_s = now / 1000;
        let live = |k: &edgekv_store::ListedKey| k.expiration.is_none_or(|at| at > now_s);
        let page = if page.keys.iter().all(live) {
            page
        } else {
            let keys = page.keys.iter().filter(|k| live(k)).cloned().collect();
            Arc::new(KeyPage { keys, resume_after: page.resume_after.clone() })
        };
        return Ok(Read { found: page, status: Some(CacheStatus::Hit) });
    }
    let page = from_store()?;
    cache.fill(id, Cached::Page(Arc::clone(&page)), ttl_s.saturating_mul(1000), now);
    Ok(Read { found: page, status: Some(CacheStatus::Miss) })
}

/// Applies local writes as one batch, waits until they are durable, then makes them the
/// region's cached copies (for what is left of a cached entry's ttl, or the default ttl). `op`
/// names the operation in errors.
pub(crate) async fn write(
    state: &AppState,
    account: &AccountId,
    ns: &NamespaceId,
    ops: Vec<WriteOp>,
    op: &'static str,
) -> Result<Vec<WriteResult>, ApiError> {
    let now = state.store.hlc().physical_now_ms();
    let taken = match &state.edge.rate {
        None => None,
        Some(rate) => match rate.admit(ns, ops.iter().map(|o| o.key.as_str()), now) {
            Some(taken) => Some(taken),
            None => {
                state.edge.rate_limited.inc();
                return Err(ApiError::RateLimited);
            }
        },
    };
    // What the cache is to hold once the writes are durable (values are shared, not copied).
    let shown = match state.edge.cache.as_ref() {
        Some(_) => ops.clone(),
        None => Vec::new(),
    };
    let written = async {
        let results =
            state.store.write(account, ns, ops).map_err(|e| ApiError::from_store(op, e))?;
        state.store.flushed().await.map_err(|e| ApiError::from_store(op, e))?;
        Ok::<_, ApiError>(results)
    }
    .await;
    let results = match written {
        Ok(results) => results,
        Err(err) => {
            if let (Some(rate), Some(taken)) = (&state.edge.rate, taken) {
                rate.give_back(taken);
            }
            return Err(err);
        }
    };
    if let Some(cache) = &state.edge.cache {
        let shown_at = state.store.hlc().physical_now_ms();
        for (op, result) in shown.into_iter().zip(&results) {
            let cached = match op.value {
                Some(value) => Cached::Entry(Entry {
                    value: Some(value),
                    metadata: op.metadata,
                    expiration: op.expiration,
                    version: result.version,
                }),
                None => Cached::Missing(Some(result.version)),
            };
            let ttl_ms = DEFAULT_CACHE_TTL.saturating_mul(1000);
            cache.replace(CacheKey::Key(ns.clone(), op.key), cached, ttl_ms, shown_at);
        }
    }
    Ok(results)
}
