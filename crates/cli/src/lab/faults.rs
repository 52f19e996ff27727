//! The fault schedule during the workload: link faults through the regions' admin APIs (the
//! typed [`Fault`] serialized as the API takes it), process faults through docker (or a
//! simulator), each start
//! and stop recorded as a fault event, and the clock offsets they set.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use anyhow::{bail, Context};
use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use edgekv_core::Fault;
use edgekv_lab::history::FaultEvent;
use edgekv_lab::meta::ClockStep;
use edgekv_lab::scenario::{Scenario, Target};
use edgekv_lab::workload::Scheduled;
use serde_json::Value;

use super::client::{Client, Endpoint};
use super::progress::Progress;
use super::{Processes, Region, Run};
use crate::chaos;

/// Applies the fault schedule; every fault still in force at the end of the workload is
/// removed then. Returns the fault events and the clock steps it caused.
pub(super) async fn drive_faults(
    run: Run<'_>,
    schedule: &[Scheduled],
) -> anyhow::Result<(Vec<FaultEvent>, Vec<ClockStep>)> {
    let (scenario, clock, progress) = (run.scenario, run.clock, run.progress);
    let processes = Arc::clone(run.processes);
    let mut driver = Driver::new(scenario, run.regions, schedule.len(), progress, processes)?;
    let begun = Instant::now();
    let mut events = Vec::new();
    let mut clock_steps = Vec::new();
    for (at, is_start, s) in steps(schedule, scenario.duration) {
        tokio::time::sleep_until(begun + at).await;
        let when = clock.now();
        let name = describe(&s.fault);
        if s.fault.is_process() {
            driver.process(&s.fault, is_start).await?;
        } else if is_start {
            driver.start(s, &name).await?;
        } else {
            driver.stop(s, &name).await?;
        }
        if is_start {
            progress.faults.lock().insert(name);
        } else {
            progress.faults.lock().remove(&name);
        }
        if let Fault::ClockOffset { region, offset_ms } = &s.fault {
            let offset_ms = if is_start { *offset_ms } else { 0 };
            clock_steps.push(ClockStep { region: region.clone(), at: when, offset_ms });
        }
        events.push(FaultEvent {
            id: Some(s.id),
            at: when,
            action: if is_start { "start" } else { "stop" }.into(),
            fault: s.fault.clone(),
        });
    }
    Ok((events, clock_steps))
}

/// Every start and stop in time order: (time from the start of the workload, whether it is a
/// start, the schedule entry). A fault without an end stops when the workload does; at one
/// instant stops come before starts.
fn steps(schedule: &[Scheduled], workload: Duration) -> Vec<(Duration, bool, &Scheduled)> {
    let mut steps: Vec<(Duration, bool, &Scheduled)> = Vec::new();
    for s in schedule {
        steps.push((s.start, true, s));
        steps.push((s.stop.unwrap_or(workload), false, s));
    }
    steps.sort_by_key(|(at, start, s)| (*at, *start, s.id));
    steps
}

/// Where the schedule's faults are carried out.
struct Driver<'a> {
    /// The admin APIs that enforce link faults, with their regions' names.
    admins: Vec<(String, Client)>,
    /// The same, as the progress records them for the clean-up of a failed run.
    endpoints: Vec<(Endpoint, String)>,
    /// What carries out process faults: docker, or a simulator.
    processes: Arc<dyn Processes>,
    /// Per schedule entry and admin API: the id its start was given.
    ids: Vec<Vec<Option<u64>>>,
    progress: &'a Progress,
}

impl<'a> Driver<'a> {
    fn new(
        scenario: &Scenario,
        regions: &[Region],
        faults: usize,
        progress: &'a Progress,
        processes: Arc<dyn Processes>,
    ) -> anyhow::Result<Self> {
        // An in-process (or simulated) cluster shares one fault table, so one region's admin
        // API sets it for all; separate nodes each enforce the faults on their own links and
        // all need them.
        let targets: Vec<&Region> = match scenario.target {
            Target::InProcess { .. } | Target::Simulated => regions.iter().take(1).collect(),
            Target::External => regions.iter().collect(),
        };
        let admins = targets
            .iter()
            .map(|r| Client::new(r.admin.clone(), &r.admin_token).map(|c| (r.name.clone(), c)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let endpoints = targets.iter().map(|r| (r.admin.clone(), r.admin_token.clone())).collect();
        let ids = vec![vec![None; admins.len()]; faults];
        Ok(Driver { admins, endpoints, processes, ids, progress })
    }

    /// Sets a link fault on every target admin API.
    async fn start(&mut self, s: &Scheduled, name: &str) -> anyhow::Result<()> {
        let body = Bytes::from(serde_json::to_vec(&s.fault)?);
        for (slot, (region, admin)) in self.admins.iter_mut().enumerate() {
            let reply = admin
                .call(Method::POST, "/admin/faults", Some((body.clone(), "application/json")))
                .await
                .map_err(|e| anyhow::anyhow!("start fault {name} in {region}: {e}"))?;
            if reply.status != StatusCode::OK {
                bail!(
                    "start fault {name} in {region}: {} {}",
                    reply.status,
                    String::from_utf8_lossy(&reply.body)
                );
            }
            let id =
                serde_json::from_slice::<Value>(&reply.body).ok().and_then(|v| v["id"].as_u64());
            if let Some(slot_id) = self.ids.get_mut(s.id as usize).and_then(|ids| ids.get_mut(slot))
            {
                *slot_id = id;
            }
            if let (Some(id), Some((endpoint, token))) = (id, self.endpoints.get(slot)) {
                self.progress.applied.lock().push((endpoint.clone(), token.clone(), id));
            }
        }
        Ok(())
    }

    /// Removes a link fault from every admin API that set it.
    async fn stop(&mut self, s: &Scheduled, name: &str) -> anyhow::Result<()> {
        for (slot, (region, admin)) in self.admins.iter_mut().enumerate() {
            let id = self.ids.get(s.id as usize).and_then(|ids| ids.get(slot)).copied().flatten();
            let Some(id) = id else { continue };
            let reply = admin.call(Method::DELETE, &format!("/admin/faults/{id}"), None).await;
            if !matches!(&reply, Ok(r) if r.status == StatusCode::OK) {
                bail!("stop fault {name} in {region}: the admin API did not confirm");
            }
            if let Some((endpoint, _)) = self.endpoints.get(slot) {
                self.progress.applied.lock().retain(|(e, _, i)| !(*i == id && e == endpoint));
            }
        }
        Ok(())
    }

    /// Starts or ends a process fault on a region, and keeps what undoes a started one for the
    /// clean-up of a failed run.
    async fn process(&self, fault: &Fault, is_start: bool) -> anyhow::Result<()> {
        let (Some(region), Some((start, end))) = (fault.process_region(), chaos::actions(fault))
        else {
            return Ok(());
        };
        let (action, undo) = if is_start { (Some(start), end) } else { (end, None) };
        let Some(action) = action else { return Ok(()) };
        self.processes.act(action, region).await.with_context(|| format!("{action:?} {region}"))?;
        let mut pending = self.progress.undo.lock();
        match undo {
            Some(undo) => pending.push((Arc::clone(&self.processes), undo, region.to_owned())),
            None => pending.retain(|(_, _, r)| r != region),
        }
        Ok(())
    }
}

/// A fault in a few words, for the progress line.
fn describe(fault: &Fault) -> String {
    match fault {
        Fault::Partition { a, b } => format!("partition {}|{}", a.join(","), b.join(",")),
        Fault::ClockOffset { region, offset_ms } => format!("clock {region} {offset_ms}ms"),
        Fault::Kill { region }
        | Fault::Stop { region }
        | Fault::Freeze { region }
        | Fault::Wipe { region } => format!("{} {region}", fault.kind()),
        Fault::OneWay { from, to }
        | Fault::Delay { from, to, .. }
        | Fault::Loss { from, to, .. }
        | Fault::Duplicate { from, to, .. }
        | Fault::Pause { from, to } => format!("{} {from}->{to}", fault.kind()),
    }
}

/// Every region's clock offset over the run: its static offset from time 0, and each
/// `clock_offset` fault on top of it while in force (the fault layer replaces, not adds to, an
/// earlier fault's offset).
pub(super) fn clock_offsets(scenario: &Scenario, faults: &[ClockStep]) -> Vec<ClockStep> {
    let mut steps: Vec<ClockStep> = scenario
        .regions
        .iter()
        .filter(|r| r.clock_offset_ms != 0)
        .map(|r| ClockStep { region: r.name.clone(), at: 0, offset_ms: r.clock_offset_ms })
        .collect();
    for step in faults {
        let base = scenario
            .regions
            .iter()
            .find(|r| r.name == step.region)
            .map_or(0, |r| r.clock_offset_ms);
        steps.push(ClockStep { offset_ms: base + step.offset_ms, ..step.clone() });
    }
    steps.sort_by_key(|s| s.at);
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_fault_adds_to_the_static_offset_and_its_stop_restores_it() {
        let scenario = Scenario::parse(
            "name = \"s\"\nduration = \"5s\"\n[[regions]]\nname = \"wnam\"\nclock_offset = \"100ms\"\n",
        )
        .unwrap();
        let faults = vec![
            ClockStep { region: "wnam".into(), at: 10, offset_ms: 50 },
            ClockStep { region: "wnam".into(), at: 20, offset_ms: 0 },
        ];
        let offsets: Vec<(u64, i64)> =
            clock_offsets(&scenario, &faults).iter().map(|s| (s.at, s.offset_ms)).collect();
        assert_eq!(offsets, [(0, 100), (10, 150), (20, 100)]);
    }

    #[test]
    fn faults_are_described() {
        let partition =
            Fault::Partition { a: vec!["wnam".into()], b: vec!["enam".into(), "weur".into()] };
        assert_eq!(describe(&partition), "partition wnam|enam,weur");
        let one_way = Fault::OneWay { from: "wnam".into(), to: "enam".into() };
        assert_eq!(describe(&one_way), "one_way wnam->enam");
    }
}
