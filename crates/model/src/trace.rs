//! Counterexamples as readable traces: the steps from the empty cluster, replayed from the
//! actions recorded in the search, and the state they end in.

use crate::actions::{apply, describe, Action};
use crate::explore::Parents;
use crate::properties::Violation;
use crate::state::World;

/// A shortest path to a violation.
#[derive(Clone, Debug)]
pub struct Counterexample {
    /// What was broken.
    pub violation: Violation,
    /// The steps, described as they were taken.
    pub steps: Vec<String>,
    /// The state after the last step.
    pub end: String,
}

impl Counterexample {
    /// Appends the step that broke a transition property, from `before` to `after`.
    pub(crate) fn push_last(&mut self, before: &World, action: Action, after: &World) {
        self.steps.push(describe(before, action));
        self.end = after.to_string();
    }
}

impl std::fmt::Display for Counterexample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "counterexample: {} violated", self.violation.property)?;
        for (i, step) in self.steps.iter().enumerate() {
            writeln!(f, "  {}. {step}", i + 1)?;
        }
        writeln!(f, "  => {}", self.violation.detail)?;
        writeln!(f, "  state:")?;
        write!(f, "{}", self.end)
    }
}

/// The trace to the state fingerprinted `last`: its actions are read back through `parents`
/// and replayed from the empty cluster, describing each against the state it was taken in.
pub(crate) fn replay(
    parents: &Parents,
    last: u128,
    violation: Violation,
    eager_sends: bool,
) -> Counterexample {
    let mut actions = Vec::new();
    let mut at = last;
    while let Some(Some((parent, action))) = parents.get(&at) {
        actions.push(*action);
        at = *parent;
    }
    actions.reverse();
    let mut world = World::new();
    let mut steps = Vec::new();
    for action in actions {
        steps.push(describe(&world, action));
        let _ = apply(&mut world, action, eager_sends);
    }
    Counterexample { violation, steps, end: world.to_string() }
}
