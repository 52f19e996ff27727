//! What carries out a scenario's process faults (kill, stop, freeze, wipe and their ends):
//! docker for a compose cluster, or a simulator for simulated regions. The fault driver only
//! says which action on which region.

use std::sync::Arc;

use anyhow::Context;
use edgekv_lab::scenario::Scenario;
use futures_util::future::BoxFuture;

use super::Region;
use crate::chaos::{self, Process};

/// Carries out process actions on regions by name.
pub(crate) trait Processes: Send + Sync {
    /// Does `action` to `region`'s process.
    fn act<'a>(&'a self, action: Process, region: &'a str) -> BoxFuture<'a, anyhow::Result<()>>;
}

/// The containers of the scenario's compose cluster.
pub(super) fn docker(scenario: &Scenario, regions: &[Region]) -> Arc<dyn Processes> {
    let cluster = chaos::Cluster {
        regions: regions
            .iter()
            .map(|r| (r.name.clone(), format!("http://{}{}", r.admin.authority, r.admin.prefix)))
            .collect(),
        admin_token: regions.first().map(|r| r.admin_token.clone()).unwrap_or_default(),
        project: scenario.compose.project.clone(),
        compose_file: scenario.compose.file.clone(),
    };
    Arc::new(Docker(cluster))
}

struct Docker(chaos::Cluster);

impl Processes for Docker {
    /// Docker is driven by blocking commands, so they run off the async workers.
    fn act<'a>(&'a self, action: Process, region: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        let cluster = self.0.clone();
        let target = region.to_owned();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || cluster.process(action, &target))
                .await
                .context("a docker command panicked")?
        })
    }
}
