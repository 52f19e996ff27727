//! `edgekv chaos`: faults on a running cluster, by region name.
//!
//! Two kinds of faults, two control paths. Link faults (partitions, one-way cuts, extra delay,
//! loss, paused replication, clock offsets) go through every region's admin API, because each
//! node enforces the faults on the links it is an end of. Process faults (kill -9, graceful
//! stop, freeze, restart, wiping a region's disk) go through docker, on the containers of the
//! docker-compose project, found by Compose's own labels so that both `docker compose` and the
//! older `docker-compose` work.

use std::fmt;
use std::process::Command;

use anyhow::{bail, Context};
use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use edgekv_core::{ActiveFault, Fault, ANY};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::lab::client::{Client, Endpoint};

/// The five regions of `deploy/docker-compose.yml`, in port order from 8787.
pub const COMPOSE_REGIONS: [&str; 5] = ["wnam", "enam", "weur", "eeur", "apac"];

/// Where the cluster is and how to reach it.
#[derive(Clone, Debug)]
pub struct Cluster {
    /// Each region and its admin base URL (`http://host:port`).
    pub regions: Vec<(String, String)>,
    /// The admin token every region accepts.
    pub admin_token: String,
    /// The Compose project name.
    pub project: String,
    /// The Compose file, for recreating a wiped region.
    pub compose_file: String,
}

impl Cluster {
    /// The compose cluster as `deploy/up.sh` starts it.
    pub fn compose_defaults() -> Self {
        Cluster {
            regions: COMPOSE_REGIONS
                .iter()
                .enumerate()
                .map(|(i, r)| ((*r).to_owned(), format!("http://127.0.0.1:{}", 8787 + i)))
                .collect(),
            admin_token: edgekv_node::config::DEV_ADMIN_TOKEN.to_owned(),
            project: "edgekv".to_owned(),
            compose_file: "deploy/docker-compose.yml".to_owned(),
        }
    }

    fn check_region(&self, region: &str) -> anyhow::Result<()> {
        if self.regions.iter().any(|(r, _)| r == region) {
            Ok(())
        } else {
            let known: Vec<&str> = self.regions.iter().map(|(r, _)| r.as_str()).collect();
            bail!("unknown region {region:?}: the cluster has {}", known.join(", "))
        }
    }

    /// Replaces the regions by those `NAME=http://HOST:PORT` name.
    pub fn set_regions(&mut self, regions: &[String]) -> anyhow::Result<()> {
        self.regions = regions
            .iter()
            .map(|r| {
                let (name, url) = r.split_once('=').with_context(|| {
                    format!("invalid --region {r:?}: expected NAME=http://HOST:PORT")
                })?;
                Ok((name.trim().to_owned(), url.trim().to_owned()))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(())
    }

    /// The partition that cuts `region` off from every other region of the cluster.
    pub fn isolate(&self, region: &str) -> Fault {
        let others = self.regions.iter().map(|(r, _)| r.clone()).filter(|r| r != region);
        Fault::Partition { a: vec![region.to_owned()], b: others.collect() }
    }

    pub(crate) fn admin(&self, url: &str) -> anyhow::Result<Client> {
        Client::new(Endpoint::parse(url)?, &self.admin_token)
    }

    /// Adds a link fault on every region; returns each region's fault id. A process fault is
    /// refused: it goes to [`Cluster::process`], since no admin API can carry it out.
    pub async fn add_fault(&self, fault: &Fault) -> anyhow::Result<Vec<(String, u64)>> {
        fault.validate().context("invalid fault")?;
        if fault.is_process() {
            bail!("invalid fault: {} acts on a region's container, not on its links", fault.kind());
        }
        for region in fault_regions(fault) {
            if region != ANY {
                self.check_region(region)?;
            }
        }
        let body = Bytes::from(serde_json::to_vec(fault)?);
        let mut ids = Vec::new();
        for (region, url) in &self.regions {
            let reply = self
                .admin(url)?
                .call(Method::POST, "/admin/faults", Some((body.clone(), "application/json")))
                .await
                .map_err(|e| anyhow::anyhow!("{region}: {e}"))?;
            let answer: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
            match answer["id"].as_u64() {
                Some(id) if reply.status == StatusCode::OK => ids.push((region.clone(), id)),
                _ => bail!("{region} refused the fault: {} {answer}", reply.status),
            }
        }
        Ok(ids)
    }

    /// Removes faults on every region: all of them, or those of one kind (as
    /// [`Fault::kind`] names it).
    pub async fn remove_faults(&self, kind: Option<&str>) -> anyhow::Result<usize> {
        let mut removed = 0;
        for (region, url) in &self.regions {
            let mut admin = self.admin(url)?;
            let err = |e| anyhow::anyhow!("{region}: {e}");
            let listing = list(&mut admin).await.map_err(err)?.unwrap_or_default();
            let Some(kind) = kind else {
                let reply = admin.call(Method::DELETE, "/admin/faults", None).await.map_err(err)?;
                if reply.status != StatusCode::OK {
                    bail!("{region} did not clear its faults: {}", reply.status);
                }
                removed += listing.faults.len();
                continue;
            };
            for listed in listing.faults.iter().filter(|l| l.fault.kind() == kind) {
                admin
                    .call(Method::DELETE, &format!("/admin/faults/{}", listed.id), None)
                    .await
                    .map_err(err)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Removes the faults `ids` names, each (region, id) on its region, going on past a
    /// region that fails; returns what failed, region by region.
    pub async fn remove_fault_ids(&self, ids: &[(String, u64)]) -> Vec<String> {
        let mut failed = Vec::new();
        for (region, id) in ids {
            let Some((_, url)) = self.regions.iter().find(|(r, _)| r == region) else {
                failed.push(format!("{region}: not a region of this cluster"));
                continue;
            };
            let path = format!("/admin/faults/{id}");
            match self.admin(url) {
                Ok(mut admin) => match admin.call(Method::DELETE, &path, None).await {
                    Ok(reply)
                        if reply.status.is_success() || reply.status == StatusCode::NOT_FOUND => {}
                    Ok(reply) => failed.push(format!("{region}: {}", reply.status)),
                    Err(err) => failed.push(format!("{region}: {err}")),
                },
                Err(err) => failed.push(format!("{region}: {err}")),
            }
        }
        failed
    }

    /// Clears every link fault on every region it can reach; returns what failed.
    pub async fn clear_everywhere(&self) -> Vec<String> {
        let mut failed = Vec::new();
        for (region, url) in &self.regions {
            match self.admin(url) {
                Ok(mut admin) => match admin.call(Method::DELETE, "/admin/faults", None).await {
                    Ok(reply) if reply.status.is_success() => {}
                    Ok(reply) => failed.push(format!("{region}: {}", reply.status)),
                    Err(err) => failed.push(format!("{region}: {err}")),
                },
                Err(err) => failed.push(format!("{region}: {err}")),
            }
        }
        failed
    }

    /// Every region's faults, as each admin API lists them.
    pub async fn status(&self) -> anyhow::Result<Vec<(String, Status)>> {
        let mut out = Vec::new();
        for (region, url) in &self.regions {
            let listed = self.admin(url)?.call(Method::GET, "/admin/faults", None).await;
            let status = match listed {
                Ok(reply) => match serde_json::from_slice::<Listing>(&reply.body) {
                    Ok(listing) => Status::Listed(listing),
                    Err(_) => Status::Refused(String::from_utf8_lossy(&reply.body).into_owned()),
                },
                Err(e) => Status::Unreachable(e.to_string()),
            };
            out.push((region.clone(), status));
        }
        Ok(out)
    }

    /// The container of `region`'s service: by Compose's labels, else (the project deployed
    /// as a Docker Swarm stack) by the stack's, the newest task first.
    fn container(&self, region: &str) -> anyhow::Result<String> {
        self.check_region(region)?;
        let compose = [
            format!("label=com.docker.compose.project={}", self.project),
            format!("label=com.docker.compose.service={region}"),
        ];
        let swarm = [
            format!("label=com.docker.stack.namespace={}", self.project),
            format!("label=com.docker.swarm.service.name={}_{region}", self.project),
        ];
        for [project, service] in [compose, swarm] {
            let out = docker(&["ps", "-aq", "--filter", &project, "--filter", &service])?;
            if let Some(id) = out.lines().map(str::trim).find(|id| !id.is_empty()) {
                return Ok(id.to_owned());
            }
        }
        bail!("no container for region {region} in compose project or swarm stack {}", self.project)
    }

    /// Whether the project runs as a swarm stack (its services are swarm's to restart).
    fn is_stack(&self) -> bool {
        let filter = format!("label=com.docker.stack.namespace={}", self.project);
        docker(&["ps", "-aq", "--filter", &filter]).is_ok_and(|out| !out.trim().is_empty())
    }

    /// Acts on `region`'s container.
    pub fn process(&self, action: Process, region: &str) -> anyhow::Result<()> {
        let verb: &[&str] = match action {
            Process::Wipe => return self.wipe(region),
            Process::Kill => &["kill", "--signal", "KILL"],
            Process::Stop => &["stop", "--time", "10"],
            Process::Start => &["start"],
            Process::Restart => &["restart", "--time", "10"],
            Process::Freeze => &["pause"],
            Process::Unfreeze => &["unpause"],
        };
        let id = self.container(region)?;
        let mut args = verb.to_vec();
        args.push(&id);
        docker(&args).map(|_| ())
    }

    /// Kills the region, deletes its volume and starts it empty: a region that lost its disk.
    fn wipe(&self, region: &str) -> anyhow::Result<()> {
        if self.is_stack() {
            bail!(
                "wipe acts on compose projects only: for a swarm stack, remove the task's volume \
                 on its node and run docker service update --force {}_{region}",
                self.project
            );
        }
        let id = self.container(region)?;
        docker(&["rm", "--force", &id])?;
        docker(&["volume", "rm", &format!("{}_{region}-data", self.project)])?;
        compose(&self.project, &self.compose_file, &["up", "-d", "--no-deps", region])
    }
}

/// What happens to a region's process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Process {
    /// SIGKILL: no flush, no goodbye.
    Kill,
    /// SIGTERM, then SIGKILL after 10 s.
    Stop,
    /// Start a stopped or killed container.
    Start,
    /// Graceful stop and start.
    Restart,
    /// Freeze every process of the container (cgroup freezer): connections hang.
    Freeze,
    /// Thaw a frozen container.
    Unfreeze,
    /// Remove the container and its volume, then recreate it empty.
    Wipe,
}

impl std::str::FromStr for Process {
    type Err = anyhow::Error;
    fn from_str(text: &str) -> anyhow::Result<Self> {
        Ok(match text {
            "kill" => Process::Kill,
            "stop" => Process::Stop,
            "start" => Process::Start,
            "restart" => Process::Restart,
            "freeze" => Process::Freeze,
            "unfreeze" => Process::Unfreeze,
            "wipe" => Process::Wipe,
            other => bail!(
                "unknown process fault {other:?}: kill, stop, start, restart, freeze, unfreeze or wipe"
            ),
        })
    }
}

/// How docker carries out a process fault: the action that starts it, and the one that ends
/// it (none for a wipe, which has no end). `None` for a link fault.
pub fn actions(fault: &Fault) -> Option<(Process, Option<Process>)> {
    match fault {
        Fault::Kill { .. } => Some((Process::Kill, Some(Process::Start))),
        Fault::Stop { .. } => Some((Process::Stop, Some(Process::Start))),
        Fault::Freeze { .. } => Some((Process::Freeze, Some(Process::Unfreeze))),
        Fault::Wipe { .. } => Some((Process::Wipe, None)),
        _ => None,
    }
}

/// The admin API's answer to `GET /admin/faults`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Listing {
    /// The faults in force.
    pub faults: Vec<ActiveFault>,
}

/// What one region said when asked for its faults.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    /// Its faults.
    Listed(Listing),
    /// The request failed: why.
    Unreachable(String),
    /// It answered something else (a refused token, say): the answer.
    Refused(String),
}

/// As JSON, the listing as the admin API gives it, so that scripts can grep it.
impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Listed(listing) => {
                f.write_str(&serde_json::to_string(listing).map_err(|_| fmt::Error)?)
            }
            Status::Unreachable(why) => {
                write!(f, "{}", serde_json::json!({ "unreachable": why }))
            }
            Status::Refused(answer) => f.write_str(answer),
        }
    }
}

/// The faults one admin API lists; `None` when its answer is not a listing.
async fn list(admin: &mut Client) -> Result<Option<Listing>, crate::lab::client::CallError> {
    let reply = admin.call(Method::GET, "/admin/faults", None).await?;
    Ok(serde_json::from_slice(&reply.body).ok())
}

/// The regions a fault names.
fn fault_regions(fault: &Fault) -> Vec<&str> {
    match fault {
        Fault::Partition { a, b } => a.iter().chain(b).map(String::as_str).collect(),
        Fault::OneWay { from, to }
        | Fault::Delay { from, to, .. }
        | Fault::Loss { from, to, .. }
        | Fault::Duplicate { from, to, .. }
        | Fault::Pause { from, to } => vec![from, to],
        Fault::ClockOffset { region, .. }
        | Fault::Kill { region }
        | Fault::Stop { region }
        | Fault::Freeze { region }
        | Fault::Wipe { region } => vec![region],
    }
}

/// Runs `docker ARGS`; its stdout on success, its stderr in the error.
fn docker(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("docker").args(args).output().context("run docker")?;
    if !out.status.success() {
        bail!("docker {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs Compose on the project, with the plugin if there is one, else `docker-compose`.
fn compose(project: &str, file: &str, args: &[&str]) -> anyhow::Result<()> {
    let plugin = Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    let mut command = if plugin {
        let mut c = Command::new("docker");
        c.arg("compose");
        c
    } else {
        Command::new("docker-compose")
    };
    let out = command
        .args(["-p", project, "-f", file])
        .args(args)
        .output()
        .context("run docker compose")?;
    if !out.status.success() {
        bail!("compose {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Splits `a,b` into region names.
pub fn region_list(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_name_their_regions_and_unknown_ones_are_refused() {
        let cluster = Cluster::compose_defaults();
        assert_eq!(cluster.regions[4], ("apac".to_owned(), "http://127.0.0.1:8791".to_owned()));
        let fault =
            Fault::Partition { a: vec!["wnam".into()], b: vec!["enam".into(), "apac".into()] };
        assert_eq!(fault_regions(&fault), ["wnam", "enam", "apac"]);
        let err = cluster.check_region("mars").unwrap_err().to_string();
        assert!(err.contains("wnam, enam, weur, eeur, apac"), "{err}");
        assert_eq!(region_list("wnam, enam,,"), ["wnam", "enam"]);
        assert_eq!("wipe".parse::<Process>().unwrap(), Process::Wipe);
        assert!("explode".parse::<Process>().is_err());
    }

    #[test]
    fn a_listing_reads_and_prints_as_the_admin_api_writes_it() {
        let body = r#"{"faults":[{"id":3,"kind":"partition","a":["wnam"],"b":["enam"]}]}"#;
        let listing: Listing = serde_json::from_str(body).unwrap();
        let cut = Fault::Partition { a: vec!["wnam".into()], b: vec!["enam".into()] };
        assert_eq!(listing.faults, [ActiveFault { id: 3, fault: cut }]);
        assert_eq!(Status::Listed(listing).to_string(), body);
        assert_eq!(Status::Listed(Listing::default()).to_string(), r#"{"faults":[]}"#);
        assert_eq!(
            Status::Unreachable("refused".into()).to_string(),
            r#"{"unreachable":"refused"}"#
        );
        let kill = Fault::Kill { region: "weur".into() };
        assert_eq!(actions(&kill), Some((Process::Kill, Some(Process::Start))));
        assert_eq!(actions(&Fault::Wipe { region: "weur".into() }), Some((Process::Wipe, None)));
        assert_eq!(actions(&Fault::Pause { from: "*".into(), to: "*".into() }), None);
    }
}
