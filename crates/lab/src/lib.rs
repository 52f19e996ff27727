//! The consistency lab's pure half: what a run records (a [`history::History`] of client
//! operations, per-region apply events, fault events and the final reads) and the checker
//! ([`check::check`]) that judges it against the invariants an eventually consistent LWW store
//! must keep. Nothing here does I/O beyond reading and writing history lines, so every invariant
//! is tested on hand-made histories.

pub mod analyze;
pub mod bounds;
pub mod check;
pub mod edn;
pub mod files;
pub mod history;
pub mod meta;
pub mod report;
pub mod scenario;
pub mod summary;
pub mod workload;
