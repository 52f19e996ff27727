//! Export of a history's client operations as a Jepsen history in EDN, so Jepsen's own tools
//! (elle-cli, Knossos) can read what EdgeKV's checker judged.
//!
//! Each operation becomes an invocation and a completion, in time order, with consecutive
//! `:index`es, as Jepsen requires. The value uses Elle's read-write register micro-operations:
//! a put is `[[:w key value]]`, a delete `[[:w key nil]]`, a get `[[:r key value]]` (`nil` when
//! not found; an invocation reads `nil`, since its result is not known yet). Region and version
//! ride along as extra keys, which Jepsen's tools ignore.

use std::fmt::Write as _;

use crate::history::{Function, History, Op, Outcome};

/// The history's operations as EDN, one map per line.
pub fn to_edn(history: &History) -> String {
    // (time, completion?, op): invocations sort before completions at the same instant.
    let mut events: Vec<(u64, bool, &Op)> = Vec::with_capacity(history.ops.len() * 2);
    // A listing reads no one register: Jepsen's rw-register model has no place for it.
    for op in history.ops.iter().filter(|o| o.f != Function::List) {
        events.push((op.invoke, false, op));
        events.push((op.complete, true, op));
    }
    events.sort_by_key(|(time, completion, op)| (*time, *completion, op.index));
    let mut out = String::new();
    for (index, (time, completion, op)) in events.into_iter().enumerate() {
        let kind = match (completion, op.outcome) {
            (false, _) => ":invoke",
            (true, Outcome::Ok) => ":ok",
            (true, Outcome::Fail) => ":fail",
            (true, Outcome::Info) => ":info",
        };
        let micro = match op.f {
            Function::Put => format!("[[:w {} {}]]", string(&op.key), opt(op.value.as_deref())),
            Function::Delete => format!("[[:w {} nil]]", string(&op.key)),
            Function::Get if !completion => format!("[[:r {} nil]]", string(&op.key)),
            Function::Get => format!("[[:r {} {}]]", string(&op.key), opt(op.value.as_deref())),
            Function::List => unreachable!("listings are filtered out above"),
        };
        let _ = write!(
            out,
            "{{:index {index}, :time {time}, :type {kind}, :process {}, :f :txn, :value {micro}, \
             :region {}",
            op.process,
            string(&op.region)
        );
        if completion {
            if let Some(version) = &op.version {
                let _ = write!(out, ", :version {}", string(version));
            }
        }
        out.push_str("}\n");
    }
    out
}

/// An EDN string literal. JSON's escapes (`\"`, `\\`, `\n`, `\uXXXX`...) are all valid EDN.
fn string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

fn opt(text: Option<&str>) -> String {
    text.map_or_else(|| "nil".to_owned(), string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(index: u64, f: Function, value: Option<&str>, invoke: u64, complete: u64) -> Op {
        Op {
            index,
            process: index as u32,
            region: "wnam".into(),
            f,
            key: "k\"1".into(),
            value: value.map(str::to_owned),
            expiration: None,
            version: Some("00000000000000ff-wnam".into()),
            invoke,
            complete,
            outcome: if f == Function::Delete { Outcome::Info } else { Outcome::Ok },
            wall_ms: 0,
            via: None,
            cache_ttl: None,
            cache: None,
        }
    }

    #[test]
    fn operations_become_invocations_and_completions_in_time_order() {
        let history = History {
            ops: vec![
                op(0, Function::Put, Some("v\n1"), 10, 30),
                op(1, Function::Get, None, 20, 25),
                op(2, Function::Delete, None, 40, 50),
            ],
            ..History::default()
        };
        let edn = to_edn(&history);
        let lines: Vec<&str> = edn.lines().collect();
        assert_eq!(lines.len(), 6);
        assert_eq!(
            lines[0],
            r#"{:index 0, :time 10, :type :invoke, :process 0, :f :txn, :value [[:w "k\"1" "v\n1"]], :region "wnam"}"#
        );
        assert_eq!(
            lines[2],
            r#"{:index 2, :time 25, :type :ok, :process 1, :f :txn, :value [[:r "k\"1" nil]], :region "wnam", :version "00000000000000ff-wnam"}"#
        );
        assert!(lines[3].starts_with("{:index 3, :time 30, :type :ok, :process 0"), "{}", lines[3]);
        assert!(lines[5].contains(":type :info") && lines[5].contains("[[:w \"k\\\"1\" nil]]"));
    }
}
