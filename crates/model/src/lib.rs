//! An exhaustive, explicit-state model checker over EdgeKV's replication rules.
//!
//! The simulator samples seeds and finds what is likely; this explores every interleaving of a
//! small cluster, within bounds, and finds what is possible. Three regions hold one key; the
//! regions write, their senders send, messages arrive in any order or are lost, duplicated or
//! left unanswered, a link is cut and healed, a region restarts, anti-entropy runs between any
//! two, hubs publish watermarks and tombstones are collected, in every order the bounds allow.
//!
//! The rules are the project's own code, not a copy: the per-peer
//! [`SenderMachine`](edgekv_replication::sans_io::SenderMachine), the LWW rule
//! [`edgekv_core::replaces`], the collection rule [`edgekv_core::may_collect`] over
//! [`edgekv_core::Watermarks`], and the reconcile decision
//! [`reconcile_items`](edgekv_replication::sans_io::reconcile_items). That is why this is an
//! explorer of our own rather than a framework such as stateright: the real types (a heap and
//! a `HashMap` inside the sender machine) are not built for a framework's state traits, and
//! the checker has to fingerprint them canonically, clone them and drive them through their
//! own API. Breadth first, with a visited set of 128-bit fingerprints, so a counterexample is
//! a shortest trace. See `docs/model.md`.
//!
//! Modules: [`state`] (regions, messages, fingerprints), [`actions`] (what can happen and what
//! it does), [`properties`] (what must hold), [`mod@explore`] (the search), [`trace`]
//! (counterexamples).

pub mod actions;
pub mod explore;
pub mod properties;
pub mod state;
pub mod trace;

pub use explore::{explore, Bounds, Report};
pub use properties::{Violation, PROPERTIES};
pub use trace::Counterexample;
