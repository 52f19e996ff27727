//! The regions of `edgekv cluster`, each stoppable and startable on its own: what lets the
//! dashboard stop a region and start it again as an operator would restart a process.
//!
//! A stopped region's listeners close and its tasks end; its store is flushed and closed. It
//! starts again on the same addresses from its data directory, so a durable region comes back
//! with everything it acknowledged; an in-memory one (`--in-memory`) comes back empty, as a
//! process without a disk would.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{bail, Context};
use edgekv_node::{RegionConfig, RunningRegion};
use edgekv_replication::Faults;
use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

/// One region: how to start it again, and what runs now.
struct Slot {
    config: RegionConfig,
    running: Option<RunningRegion>,
}

/// The cluster's regions under one supervisor.
pub struct Supervised {
    slots: tokio::sync::Mutex<Vec<Slot>>,
    faults: Arc<Faults>,
    root: CancellationToken,
}

impl Supervised {
    /// Takes over regions started by `edgekv_node::start_cluster` with `root`.
    pub fn new(running: Vec<RunningRegion>, faults: Arc<Faults>, root: CancellationToken) -> Self {
        let slots = running
            .into_iter()
            .map(|region| {
                let mut config = region.config.clone();
                // Again on the addresses it has now, even when it first took free ports.
                config.listen = region.http_addr;
                config.grpc_listen = region.grpc_addr;
                config.binding_listen = region.binding_addr;
                Slot { config, running: Some(region) }
            })
            .collect();
        Supervised { slots: tokio::sync::Mutex::new(slots), faults, root }
    }

    /// Each region's name and HTTP address.
    pub async fn addresses(&self) -> Vec<(String, SocketAddr)> {
        let slots = self.slots.lock().await;
        slots.iter().map(|s| (s.config.region.to_string(), s.config.listen)).collect()
    }

    /// Stops every region (the cluster's token was cancelled): the first error, if any.
    pub async fn stop_all(&self) -> anyhow::Result<()> {
        let mut failed = None;
        let mut slots = self.slots.lock().await;
        for slot in slots.iter_mut() {
            if let Some(region) = slot.running.take() {
                region.shutdown.cancel();
                if let Err(err) = region.stopped().await {
                    failed.get_or_insert(err);
                }
            }
        }
        failed.map_or(Ok(()), Err)
    }

    async fn stop_region(&self, name: &str) -> anyhow::Result<()> {
        let mut slots = self.slots.lock().await;
        let slot = find(&mut slots, name)?;
        let Some(region) = slot.running.take() else { bail!("already stopped") };
        tracing::info!(region = name, "stopping at the dashboard's request");
        region.shutdown.cancel();
        region.stopped().await
    }

    async fn start_region(&self, name: &str) -> anyhow::Result<()> {
        let mut slots = self.slots.lock().await;
        let slot = find(&mut slots, name)?;
        if slot.running.is_some() {
            bail!("already running");
        }
        tracing::info!(region = name, "starting at the dashboard's request");
        let bound = edgekv_node::bind(slot.config.clone()).await?;
        let running = edgekv_node::start(bound, Arc::clone(&self.faults), self.root.child_token())
            .with_context(|| format!("start region {name}"))?;
        slot.running = Some(running);
        Ok(())
    }
}

fn find<'a>(slots: &'a mut [Slot], name: &str) -> anyhow::Result<&'a mut Slot> {
    slots
        .iter_mut()
        .find(|s| s.config.region.as_str() == name)
        .with_context(|| format!("no region {name}"))
}

impl crate::dash::Supervisor for Supervised {
    fn stop<'a>(&'a self, region: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(self.stop_region(region))
    }

    fn start<'a>(&'a self, region: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(self.start_region(region))
    }
}
