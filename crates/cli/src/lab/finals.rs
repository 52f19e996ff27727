//! The final reads: after the quiet period, every key the workload touched, read in every
//! region, a few connections per region at a time.

use std::collections::BTreeSet;
use std::sync::Arc;

use anyhow::Context;
use axum::http::{Method, StatusCode};
use edgekv_lab::history::FinalRead;
use tokio::task::JoinSet;

use super::client::Client;
use super::worker::encode;
use super::{Clock, Run};

/// Connections per region used for the final reads.
const FINAL_READERS: usize = 8;

/// Reads every key in every region, a few connections per region at a time.
pub(super) async fn final_reads(
    run: Run<'_>,
    namespace: &str,
    keys: &BTreeSet<String>,
) -> anyhow::Result<Vec<FinalRead>> {
    let keys: Arc<Vec<String>> = Arc::new(keys.iter().cloned().collect());
    let base = format!("/accounts/{}/storage/kv/namespaces/{namespace}", run.scenario.account);
    let mut readers = JoinSet::new();
    for region in run.regions {
        for part in 0..FINAL_READERS {
            let reader = Reader {
                client: Client::new(region.api.clone(), &region.token)?,
                region: region.name.clone(),
                base: base.clone(),
                clock: run.clock,
            };
            readers.spawn(reader.read(Arc::clone(&keys), part));
        }
    }
    let mut finals = Vec::new();
    while let Some(reads) = readers.join_next().await {
        finals.extend(reads.context("a final reader panicked")?);
    }
    finals.sort_by(|a, b| (&a.key, &a.region).cmp(&(&b.key, &b.region)));
    Ok(finals)
}

/// One connection reading its share of the keys in one region.
struct Reader {
    client: Client,
    region: String,
    base: String,
    clock: Clock,
}

impl Reader {
    /// Reads every `FINAL_READERS`th key from `part` on.
    async fn read(mut self, keys: Arc<Vec<String>>, part: usize) -> Vec<FinalRead> {
        let mut reads = Vec::new();
        for key in keys.iter().skip(part).step_by(FINAL_READERS) {
            if let Some(read) = self.read_one(key).await {
                reads.push(read);
            }
        }
        reads
    }

    /// A read that fails is left out: the checker reports the key as undecided.
    async fn read_one(&mut self, key: &str) -> Option<FinalRead> {
        let wall = self.clock.wall_ms();
        let at = self.clock.now();
        let path = format!("{}/values/{}", self.base, encode(key));
        let reply = self.client.call(Method::GET, &path, None).await.ok()?;
        let complete = self.clock.now();
        let version = reply
            .headers
            .get(edgekv_api::VERSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let (value, version) = match reply.status {
            StatusCode::OK => (Some(String::from_utf8_lossy(&reply.body).into_owned()), version),
            StatusCode::NOT_FOUND if !super::worker::namespace_missing(&reply) => (None, None),
            _ => return None,
        };
        Some(FinalRead {
            region: self.region.clone(),
            key: key.to_owned(),
            value,
            version,
            at,
            complete: Some(complete),
            wall_ms: wall,
        })
    }
}
