//! Shrinking a failing run: smaller scenarios, the same seed, kept while they still fail.
//!
//! The scenario is edited as TOML, one step at a time:
//! - drop one fault;
//! - halve the workload's duration;
//! - halve a region's writers or readers;
//! - halve the key space or the operation rate.
//!
//! Each candidate is simulated with the seed that failed, and it is kept if it is still
//! invalid. The steps repeat until none helps. What is left is written beside the run as
//! `shrunk.toml`, a scenario file that `edgekv sim` replays.
//!
//! A smaller scenario draws a different workload from the same seed, so the failure it keeps
//! need not be the first one's; it is a smaller witness of the same broken rule, which is what
//! a person debugging wants to read.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use edgekv_lab::scenario::Scenario;
use toml::{Table, Value};

use super::simulate_quietly;

/// The checker's exit code for an invalid run.
const INVALID: i32 = 1;
/// How many candidates are tried at most, so that shrinking ends in bounded time.
const MAX_TRIES: usize = 200;

/// Shrinks the failing run of `text` with `seed`, writing `shrunk.toml` into `out`.
pub fn shrink(path: &Path, text: &str, seed: u64, out: &Path) -> anyhow::Result<()> {
    let mut best: Table = toml::from_str(text).context("the scenario is not a TOML table")?;
    let mut tries = 0;
    eprintln!("sim: shrinking seed {seed} of {}", path.display());
    'improve: loop {
        for candidate in candidates(&best) {
            if tries == MAX_TRIES {
                break 'improve;
            }
            tries += 1;
            if still_fails(&candidate, seed, out)? {
                eprintln!("sim: still invalid with {}", describe(&candidate));
                best = candidate;
                continue 'improve;
            }
        }
        break;
    }
    let shrunk = out.join("shrunk.toml");
    let header = format!(
        "# Shrunk by `edgekv sim --shrink` from {} with seed {seed}; replay with\n\
         # edgekv sim {} --seed {seed} --out DIR\nseed = {seed}\n",
        path.display(),
        shrunk.display()
    );
    best.remove("seed");
    std::fs::write(&shrunk, header + &toml::to_string(&best)?)
        .with_context(|| format!("write {}", shrunk.display()))?;
    println!("shrunk scenario ({tries} runs tried): {}", shrunk.display());
    Ok(())
}

/// Whether `candidate` parses and is still invalid with `seed`.
fn still_fails(candidate: &Table, seed: u64, out: &Path) -> anyhow::Result<bool> {
    let text = toml::to_string(candidate)?;
    let Ok(scenario) = Scenario::parse_simulated(&text) else { return Ok(false) };
    let dir = out.join("shrinking");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let code = simulate_quietly(&scenario, &text, seed, &dir)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(code == INVALID)
}

/// Every one-step smaller variant of `scenario`, the biggest cuts first.
fn candidates(scenario: &Table) -> Vec<Table> {
    let mut out = Vec::new();
    let faults = scenario.get("faults").and_then(Value::as_array).map_or(0, Vec::len);
    for i in 0..faults {
        let mut c = scenario.clone();
        if let Some(Value::Array(list)) = c.get_mut("faults") {
            list.remove(i);
        }
        out.push(c);
    }
    if let Some(shorter) = halve_duration(scenario) {
        out.push(shorter);
    }
    let regions = scenario.get("regions").and_then(Value::as_array).map_or(0, Vec::len);
    for i in 0..regions {
        for field in ["writers", "readers"] {
            let mut c = scenario.clone();
            let halved = c
                .get_mut("regions")
                .and_then(|r| r.get_mut(i))
                .and_then(Value::as_table_mut)
                .is_some_and(|t| halve_integer(t, field));
            if halved {
                out.push(c);
            }
        }
    }
    for field in ["keys", "rate"] {
        let mut c = scenario.clone();
        if c.get_mut("workload")
            .and_then(Value::as_table_mut)
            .is_some_and(|t| halve_integer(t, field))
        {
            out.push(c);
        }
    }
    out
}

/// The scenario with half its workload duration, if it runs for more than a second.
fn halve_duration(scenario: &Table) -> Option<Table> {
    let text = scenario.get("duration")?.as_str()?;
    let duration = edgekv_core::parse_duration(text).ok()?;
    if duration <= Duration::from_secs(1) {
        return None;
    }
    let mut c = scenario.clone();
    c.insert("duration".into(), Value::String(format!("{}ms", duration.as_millis() / 2)));
    Some(c)
}

/// Halves an integer field that is above its floor (1); says whether it did.
fn halve_integer(table: &mut Table, field: &str) -> bool {
    match table.get(field).and_then(Value::as_integer) {
        Some(n) if n > 1 => {
            table.insert(field.into(), Value::Integer(n / 2));
            true
        }
        _ => false,
    }
}

/// A scenario's size in a few words, for the progress lines.
fn describe(scenario: &Table) -> String {
    let faults = scenario.get("faults").and_then(Value::as_array).map_or(0, Vec::len);
    let duration = scenario.get("duration").and_then(Value::as_str).unwrap_or("?");
    format!("{faults} faults, duration {duration}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_drop_one_fault_or_halve_one_thing() {
        let scenario: Table = toml::from_str(
            r#"
            duration = "10s"
            [[regions]]
            name = "a"
            writers = 4
            [workload]
            keys = 1
            [[faults]]
            kind = "partition"
            [[faults]]
            kind = "loss"
            "#,
        )
        .unwrap();
        let all = candidates(&scenario);
        // Two without a fault, one shorter, one with fewer writers (keys is at its floor).
        assert_eq!(all.len(), 4, "{all:#?}");
        assert_eq!(all[0]["faults"].as_array().unwrap()[0]["kind"].as_str(), Some("loss"));
        assert_eq!(all[2]["duration"].as_str(), Some("5000ms"));
        assert_eq!(all[3]["regions"][0]["writers"].as_integer(), Some(2));
    }
}
