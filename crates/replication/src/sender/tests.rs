//! The sender's machine driven by scripts: each `testdata/sender/NAME.script` is a sequence of
//! commands, and `NAME.golden` beside it is what the machine answered. A change that alters an
//! answer fails the test with a diff; `UPDATE_GOLDEN=1 cargo test -p edgekv-replication`
//! rewrites the golden files, to be read and committed.
//!
//! Commands (timestamps and times are milliseconds):
//! - `new [position=MS] [max_backoff=MS] [cap=N]`: a fresh machine;
//! - `offer ts=MS due=MS [bytes=N]`: a write of the outbox;
//! - `take now=MS [paused]`: the batch due, if any;
//! - `settle delivered|failed|lost now=MS [refused=I,J]`: how the batch in flight ended;
//! - `confirm through=MS`: anti-entropy confirmed the peer up to there;
//! - `overflow`: let the backlog go to anti-entropy;
//! - `wake now=MS [paused]`: when the shell should look again;
//! - `state`: the acknowledged watermark, the backlog, the cursor.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use edgekv_core::{AccountId, Entry, NamespaceId, ReplicatedWrite, Timestamp, Version};

use super::machine::{Batch, Outcome, SenderMachine};

struct Runner {
    machine: SenderMachine,
    in_flight: Option<Batch>,
}

fn args(words: &[&str]) -> (HashMap<String, String>, Vec<String>) {
    let mut named = HashMap::new();
    let mut flags = Vec::new();
    for word in words {
        match word.split_once('=') {
            Some((k, v)) => {
                named.insert(k.to_owned(), v.to_owned());
            }
            None => flags.push((*word).to_owned()),
        }
    }
    (named, flags)
}

fn number(named: &HashMap<String, String>, key: &str, default: u64) -> u64 {
    named.get(key).map_or(default, |v| v.parse().unwrap_or_else(|_| panic!("{key}={v}")))
}

fn write(ts_ms: u64, bytes: usize) -> ReplicatedWrite {
    ReplicatedWrite::Key {
        account: AccountId::parse("acct").unwrap(),
        namespace: NamespaceId::parse(&"0".repeat(32)).unwrap(),
        key: format!("k{ts_ms}"),
        entry: Entry {
            value: Some(Bytes::from(vec![b'v'; bytes])),
            metadata: None,
            expiration: None,
            version: Version::new(Timestamp::from_physical_ms(ts_ms), "wnam".parse().unwrap()),
        },
    }
}

fn shown(batch: &Batch) -> String {
    let ts: Vec<String> =
        batch.writes.iter().map(|w| w.version().ts.physical_ms().to_string()).collect();
    format!("[{}]", ts.join(","))
}

fn ms(ts: Timestamp) -> u64 {
    ts.physical_ms()
}

impl Runner {
    fn new() -> Self {
        Runner {
            machine: SenderMachine::new(Timestamp(0), Duration::from_secs(5), 1_000_000),
            in_flight: None,
        }
    }

    fn run(&mut self, line: &str) -> String {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (named, flags) = args(&words[1..]);
        let now = number(&named, "now", 0);
        let paused = flags.iter().any(|f| f == "paused");
        match words[0] {
            "new" => {
                let position = Timestamp::from_physical_ms(number(&named, "position", 0));
                let backoff = Duration::from_millis(number(&named, "max_backoff", 5000));
                let cap = number(&named, "cap", 1_000_000) as usize;
                self.machine = SenderMachine::new(position, backoff, cap);
                self.in_flight = None;
                "ok".into()
            }
            "offer" => {
                let ts = number(&named, "ts", 0);
                let bytes = number(&named, "bytes", 1) as usize;
                self.machine.offer(write(ts, bytes), number(&named, "due", 0));
                format!("cursor {}", ms(self.machine.cursor()))
            }
            "take" => match self.machine.take_due(now, paused) {
                Some(batch) => {
                    let out = format!("send {}", shown(&batch));
                    self.in_flight = Some(batch);
                    out
                }
                None => "nothing to send".into(),
            },
            "settle" => {
                let Some(batch) = self.in_flight.take() else { return "no batch in flight".into() };
                let outcome = match flags.first().map(String::as_str) {
                    Some("delivered") => {
                        let refused = named
                            .get("refused")
                            .map(|r| r.split(',').map(|i| i.parse().unwrap()).collect())
                            .unwrap_or_default();
                        Outcome::Delivered { refused }
                    }
                    Some("failed") => Outcome::Failed,
                    Some("lost") => Outcome::Lost,
                    other => panic!("settle what? {other:?}"),
                };
                let settled = self.machine.settle(batch, outcome, now);
                format!("delivered {} recovered {}", settled.delivered, settled.recovered)
            }
            "confirm" => {
                self.machine
                    .confirm_through(Timestamp::from_physical_ms(number(&named, "through", 0)));
                "ok".into()
            }
            "overflow" => format!("let go {}", self.machine.overflow()),
            "wake" => format!("wake at {}", self.machine.next_wake(now, paused)),
            "state" => format!(
                "acked_through {} backlog {} cursor {} failing {}",
                ms(self.machine.acked_through()),
                self.machine.backlog(),
                ms(self.machine.cursor()),
                self.machine.is_failing()
            ),
            other => panic!("unknown command {other:?}"),
        }
    }
}

/// Runs a script: every command echoed with `> `, then its answer.
fn transcript(script: &str) -> String {
    let mut runner = Runner::new();
    let mut out = String::new();
    for line in script.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        out.push_str(&format!("> {line}\n{}\n", runner.run(line)));
    }
    out
}

#[test]
fn sender_scripts_match_their_golden_transcripts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/sender");
    let mut scripts: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "script"))
        .collect();
    scripts.sort();
    assert!(scripts.len() >= 5, "the sender's scripts are missing from {}", dir.display());
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failed = Vec::new();
    for script in scripts {
        let got = transcript(&std::fs::read_to_string(&script).unwrap());
        let golden = script.with_extension("golden");
        if update {
            std::fs::write(&golden, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_default();
        if got != want {
            failed.push(format!("{}:\n--- golden\n{want}\n--- got\n{got}", script.display()));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
