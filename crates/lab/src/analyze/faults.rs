//! Fault windows: each recorded start paired with its stop, on the run's clock, and their union
//! for the "during a fault" questions several measurements ask.

use edgekv_core::Fault;

use super::ms;
use crate::history::{FaultEvent, Nanos};
use crate::summary::FaultWindow;

/// Longest fault description in the summary, in characters: the figures label bands with it.
const DESCRIPTION_CHARS: usize = 160;

/// A fault's window on the run's clock.
pub(super) struct FaultWin<'a> {
    pub(super) id: Option<u64>,
    pub(super) fault: &'a Fault,
    pub(super) start: Nanos,
    pub(super) end: Nanos,
    pub(super) stopped: bool,
}

impl FaultWin<'_> {
    pub(super) fn to_summary(&self) -> FaultWindow {
        // The fault in the shape the history and the admin API write it.
        let mut description =
            serde_json::to_string(self.fault).unwrap_or_else(|_| self.fault.kind().to_owned());
        if description.chars().count() > DESCRIPTION_CHARS {
            description = description.chars().take(DESCRIPTION_CHARS - 1).chain(['…']).collect();
        }
        FaultWindow {
            id: self.id,
            kind: self.fault.kind().to_owned(),
            description,
            start_ms: ms(self.start),
            end_ms: ms(self.end),
            stopped: self.stopped,
        }
    }
}

/// Pairs starts with stops: by id when recorded, else by an identical fault. A start without a
/// stop lasts until the end of the workload.
pub(super) fn fault_windows(events: &[FaultEvent], workload_end: Nanos) -> Vec<FaultWin<'_>> {
    let mut sorted: Vec<&FaultEvent> = events.iter().collect();
    sorted.sort_by_key(|e| (e.at, e.action != "start"));
    let mut windows: Vec<FaultWin<'_>> = Vec::new();
    for event in sorted {
        match event.action.as_str() {
            "start" => windows.push(FaultWin {
                id: event.id,
                fault: &event.fault,
                start: event.at,
                end: workload_end.max(event.at),
                stopped: false,
            }),
            "stop" => {
                let open = windows.iter_mut().find(|w| {
                    !w.stopped
                        && match event.id {
                            Some(id) => w.id == Some(id),
                            None => w.id.is_none() && *w.fault == event.fault,
                        }
                });
                if let Some(w) = open {
                    w.end = event.at.max(w.start);
                    w.stopped = true;
                }
            }
            _ => {}
        }
    }
    windows
}

/// The union of the fault windows, for "during a fault" questions.
pub(super) struct FaultSet {
    spans: Vec<(Nanos, Nanos)>,
}

impl FaultSet {
    pub(super) fn new(windows: &[FaultWin<'_>]) -> Self {
        let mut raw: Vec<(Nanos, Nanos)> = windows.iter().map(|w| (w.start, w.end)).collect();
        raw.sort_unstable();
        let mut spans: Vec<(Nanos, Nanos)> = Vec::new();
        for (start, end) in raw {
            match spans.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => spans.push((start, end)),
            }
        }
        FaultSet { spans }
    }

    pub(super) fn contains(&self, t: Nanos) -> bool {
        let i = self.spans.partition_point(|&(start, _)| start <= t);
        i > 0 && self.spans.get(i - 1).is_some_and(|&(_, end)| t <= end)
    }
}
