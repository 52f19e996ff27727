//! `edgekv chaos join|leave|members`: membership changes made on every region at once.
//!
//! Each region keeps its own list of members (see `edgekv_replication::members`), so joining
//! and leaving are one admin call per region. Leaving drains first: the region that goes
//! waits until every member has acknowledged its writes, and only then do the others let go of
//! it. A region that cannot drain (down, cut off, or too slow for the timeout) is removed only
//! when forced, and what it may not have delivered is reported, not hidden.

use std::time::Duration;

use anyhow::{bail, Context};
use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::chaos::Cluster;

/// What `leave` did, region by region.
#[derive(Debug, Default)]
pub struct LeaveReport {
    /// Whether the leaving region drained before it was removed.
    pub drained: bool,
    /// Lines to print: what each region did, and anything possibly lost.
    pub lines: Vec<String>,
}

impl Cluster {
    async fn admin_call(
        &self,
        region: &str,
        url: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut admin = self.admin(url)?;
        let body = body.map(|b| (Bytes::from(b.to_string()), "application/json"));
        let reply =
            admin.call(method, path, body).await.map_err(|e| anyhow::anyhow!("{region}: {e}"))?;
        let answer = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        Ok((reply.status, answer))
    }

    /// Makes `region`, reachable for gRPC at `grpc_url`, a member at every other region.
    /// Returns what each region did (`joined`, `moved` or `unchanged`).
    pub async fn join(&self, region: &str, grpc_url: &str) -> anyhow::Result<Vec<String>> {
        let mut lines = Vec::new();
        for (name, url) in self.regions.iter().filter(|(name, _)| name != region) {
            let path = format!("/admin/peers/{region}");
            let body = json!({ "url": grpc_url });
            let (status, answer) =
                self.admin_call(name, url, Method::PUT, &path, Some(body)).await?;
            if status != StatusCode::OK {
                bail!("{name} refused to add {region}: {status} {answer}");
            }
            lines.push(format!("{name}: {region} {}", answer["change"].as_str().unwrap_or("?")));
        }
        Ok(lines)
    }

    /// Takes `region` out of the cluster: drains it (up to `timeout`), removes it at every
    /// other region and removes every other region at it. Refuses, changing nothing, when it
    /// cannot drain, unless `force`.
    pub async fn leave(
        &self,
        region: &str,
        timeout: Duration,
        force: bool,
    ) -> anyhow::Result<LeaveReport> {
        let mut report = LeaveReport::default();
        let leaving = self.regions.iter().find(|(name, _)| name == region).map(|(_, u)| u);
        let drain = match leaving {
            Some(url) => {
                let path = format!("/admin/drain?timeout={}ms", timeout.as_millis());
                self.admin_call(region, url, Method::POST, &path, None).await
            }
            None => Err(anyhow::anyhow!("{region} has no admin URL in --region")),
        };
        match drain {
            Ok((StatusCode::OK, answer)) if answer["drained"] == true => {
                report.drained = true;
                report.lines.push(format!("{region}: drained"));
            }
            Ok((status, answer)) => {
                let pending = pending_lines(region, &answer);
                if !force {
                    bail!(
                        "{region} did not drain ({status}): {}; nothing was removed (wait \
                         longer with --timeout, or --force to remove it anyway)",
                        pending.join("; ")
                    );
                }
                report.lines.extend(pending.into_iter().map(|p| format!("lost: {p}")));
            }
            Err(error) if force => {
                report.lines.push(format!("{region} could not drain ({error:#})"));
            }
            Err(error) => bail!(
                "{region} could not drain: {error:#}; nothing was removed (--force removes it \
                 anyway, and whatever it alone holds is lost)"
            ),
        }
        for (name, url) in self.regions.iter().filter(|(name, _)| name != region) {
            let path = format!("/admin/peers/{region}");
            let (status, answer) = self.admin_call(name, url, Method::DELETE, &path, None).await?;
            match status {
                StatusCode::OK => {
                    let line = if report.drained {
                        format!("{name}: removed {region}")
                    } else {
                        let heard = answer["watermark_ms"].as_u64().unwrap_or(0);
                        format!(
                            "{name}: removed {region}; writes of {region} after {heard} ms \
                             since the epoch may not have reached {name}"
                        )
                    };
                    report.lines.push(line);
                }
                StatusCode::NOT_FOUND => {
                    report.lines.push(format!("{name}: {region} was not a member"))
                }
                _ => bail!("{name} refused to remove {region}: {status} {answer}"),
            }
        }
        if let (Some(url), true) = (leaving, report.drained) {
            for (name, _) in self.regions.iter().filter(|(name, _)| name != region) {
                let path = format!("/admin/peers/{name}");
                let (status, answer) =
                    self.admin_call(region, url, Method::DELETE, &path, None).await?;
                if status != StatusCode::OK && status != StatusCode::NOT_FOUND {
                    bail!("{region} refused to let go of {name}: {status} {answer}");
                }
            }
            report.lines.push(format!("{region}: alone now"));
        }
        Ok(report)
    }

    /// Every region's view of the membership, one line per region.
    pub async fn members(&self) -> anyhow::Result<Vec<String>> {
        let mut lines = Vec::new();
        for (name, url) in &self.regions {
            let (status, answer) =
                self.admin_call(name, url, Method::GET, "/admin/peers", None).await?;
            if status != StatusCode::OK {
                bail!("{name} did not list its peers: {status} {answer}");
            }
            let peers = answer["peers"].as_array().context("no peers in the answer")?;
            let shown: Vec<String> = peers
                .iter()
                .map(|p| {
                    let region = p["region"].as_str().unwrap_or("?");
                    if p["member"] == true {
                        format!("{region} (backlog {})", p["backlog"])
                    } else {
                        format!("{region} (removed)")
                    }
                })
                .collect();
            lines.push(format!("{name}: {}", shown.join(", ")));
        }
        Ok(lines)
    }
}

/// What a drain's answer says is still pending, one entry per member.
fn pending_lines(region: &str, answer: &Value) -> Vec<String> {
    let Some(pending) = answer["pending"].as_array() else {
        return vec![format!("{region} answered {answer}")];
    };
    pending
        .iter()
        .map(|p| {
            let to = p["region"].as_str().unwrap_or("?");
            format!("{} writes of {region} not acknowledged by {to}", p["undelivered"])
        })
        .collect()
}
