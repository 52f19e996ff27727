//! A run's output directory: `history.jsonl` in, and what the checker writes next to it
//! (`check.json`, and `history.edn` for Jepsen's tools).

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::check::{check, CheckReport};
use crate::history::{History, HistoryError};
use crate::meta::RunMeta;
use crate::summary::{CheckSummary, Summary};

/// The history a run records.
pub const HISTORY: &str = "history.jsonl";
/// The checker's verdict and anomalies.
pub const CHECK: &str = "check.json";
/// The client operations as a Jepsen history.
pub const EDN: &str = "history.edn";
/// The run's description ([`crate::meta::RunMeta`]).
pub const RUN: &str = "run.json";
/// The report's figures as data.
pub const SUMMARY: &str = "summary.json";
/// The report for people.
pub const REPORT: &str = "report.html";

/// A run directory that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// A file could not be opened, read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        error: std::io::Error,
    },
    /// The history file is malformed.
    #[error("{path}: {error}")]
    History {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        error: HistoryError,
    },
}

/// Reads `dir/history.jsonl`.
pub fn read_history(dir: &Path) -> Result<History, FilesError> {
    let path = dir.join(HISTORY);
    let file = File::open(&path).map_err(|error| FilesError::Io { path: path.clone(), error })?;
    History::read_jsonl(BufReader::new(file)).map_err(|error| FilesError::History { path, error })
}

/// Checks the run in `dir` and writes `check.json` and `history.edn` beside its history.
pub fn check_dir(dir: &Path) -> Result<CheckReport, FilesError> {
    write_check(dir, &read_history(dir)?)
}

/// Checks `history` and writes `check.json` and `history.edn` into `dir` (`lab run` has the
/// history in memory and need not read back what it just wrote).
pub fn write_check(dir: &Path, history: &History) -> Result<CheckReport, FilesError> {
    let report = check(history);
    let json = serde_json::to_vec_pretty(&report)
        .map_err(|e| FilesError::Io { path: dir.join(CHECK), error: std::io::Error::other(e) })?;
    write(&dir.join(CHECK), &json)?;
    write(&dir.join(EDN), crate::edn::to_edn(history).as_bytes())?;
    Ok(report)
}

/// Measures the run in `dir` and writes `summary.json` and `report.html` beside its history.
///
/// Only the history is required. Without `run.json` the report says that its metadata are
/// defaults; without `check.json` the checker runs here. A `run.json` or `check.json` that does
/// not parse is set aside with a note in the report rather than failing it: a report that says
/// what it could not use is worth more than none.
pub fn report_dir(dir: &Path) -> Result<Summary, FilesError> {
    let history = read_history(dir)?;
    let mut notes = Vec::new();
    let meta = read_optional(&dir.join(RUN))?.and_then(|bytes| {
        serde_json::from_slice::<RunMeta>(&bytes)
            .map_err(|e| notes.push(format!("{RUN} does not parse ({e}) and was ignored")))
            .ok()
    });
    let verdict = read_optional(&dir.join(CHECK))?.and_then(|bytes| {
        serde_json::from_slice::<CheckSummary>(&bytes)
            .map(|c| CheckSummary { source: CHECK.to_owned(), ..c.capped() })
            .map_err(|e| notes.push(format!("{CHECK} does not parse ({e}): the checker ran again")))
            .ok()
    });
    write_report(dir, &history, meta.as_ref(), verdict, notes)
}

/// Measures `history` and writes `summary.json` and `report.html` into `dir`, with `notes` on
/// what could not be used.
pub fn write_report(
    dir: &Path,
    history: &History,
    meta: Option<&RunMeta>,
    verdict: Option<CheckSummary>,
    notes: Vec<String>,
) -> Result<Summary, FilesError> {
    let mut summary = crate::analyze::summarize(history, meta, verdict);
    summary.notes.extend(notes);
    let json = serde_json::to_vec(&summary)
        .map_err(|e| FilesError::Io { path: dir.join(SUMMARY), error: std::io::Error::other(e) })?;
    write(&dir.join(SUMMARY), &json)?;
    write(&dir.join(REPORT), crate::report::render(&summary).as_bytes())?;
    Ok(summary)
}

/// The file's bytes, or `None` if it does not exist.
fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, FilesError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(FilesError::Io { path: path.to_path_buf(), error }),
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), FilesError> {
    let io = |error| FilesError::Io { path: path.to_path_buf(), error };
    let mut out = BufWriter::new(File::create(path).map_err(io)?);
    out.write_all(bytes).map_err(io)?;
    out.flush().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checking_a_directory_writes_the_verdict_and_the_jepsen_history() {
        let dir = std::env::temp_dir().join(format!("edgekv-lab-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let line = r#"{"type":"op","index":0,"process":0,"region":"wnam","f":"put","key":"k","value":"v","version":"0000000000000001-wnam","invoke":1,"complete":2,"outcome":"ok"}"#;
        let fin = r#"{"type":"final","region":"wnam","key":"k","value":"v","version":"0000000000000001-wnam","at":3}"#;
        std::fs::write(dir.join(HISTORY), format!("{line}\n{fin}\n")).unwrap();
        let report = check_dir(&dir).unwrap();
        assert_eq!(report.validity, crate::check::Validity::Valid, "{report:?}");
        let written: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(CHECK)).unwrap()).unwrap();
        assert_eq!(written["validity"], "valid");
        assert_eq!(std::fs::read_to_string(dir.join(EDN)).unwrap().lines().count(), 2);

        std::fs::write(dir.join(HISTORY), "{\"type\":\"op\"}\n").unwrap();
        let err = check_dir(&dir).unwrap_err().to_string();
        assert!(err.contains(HISTORY) && err.contains("line 1"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reporting_a_directory_writes_the_summary_and_the_report() {
        let dir = std::env::temp_dir().join(format!("edgekv-lab-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let lines = [
            r#"{"type":"op","index":0,"process":0,"region":"wnam","f":"put","key":"k","value":"v","version":"0000000000000001-wnam","invoke":1000000,"complete":2000000,"outcome":"ok"}"#,
            r#"{"type":"apply","region":"wnam","key":"k","version":"0000000000000001-wnam","at":2000000}"#,
            r#"{"type":"apply","region":"enam","key":"k","version":"0000000000000001-wnam","at":52000000}"#,
            r#"{"type":"final","region":"wnam","key":"k","value":"v","version":"0000000000000001-wnam","at":90000000}"#,
            r#"{"type":"final","region":"enam","key":"k","value":"v","version":"0000000000000001-wnam","at":90000000}"#,
        ];
        std::fs::write(dir.join(HISTORY), lines.join("\n")).unwrap();

        // Only the history: defaults, said so, and the checker run here.
        let summary = report_dir(&dir).unwrap();
        assert!(!summary.run.meta_present);
        assert_eq!(
            (summary.check.validity.as_str(), summary.check.source.as_str()),
            ("valid", "computed")
        );
        assert_eq!(summary.visibility.overall.count, 1);
        assert_eq!(summary.visibility.overall.p50_ms, Some(50.0));
        let written: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(SUMMARY)).unwrap()).unwrap();
        assert_eq!(written["visibility"]["overall"]["count"], 1);
        assert_eq!(written["check"]["validity"], "valid");
        assert_eq!(written["run"]["seed"], 0);
        let html = std::fs::read_to_string(dir.join(REPORT)).unwrap();
        assert!(html.contains("run.json was not found"));

        // With run.json and check.json: both are used.
        let meta = RunMeta { seed: 99, scenario: "s".into(), ..RunMeta::default() };
        std::fs::write(dir.join(RUN), serde_json::to_vec(&meta).unwrap()).unwrap();
        std::fs::write(
            dir.join(CHECK),
            r#"{"validity":"unknown","anomalies":[],"unknowns":["x"],"keys":1,"ops":1}"#,
        )
        .unwrap();
        let summary = report_dir(&dir).unwrap();
        assert!(summary.run.meta_present);
        assert_eq!(summary.run.seed, 99);
        assert_eq!(
            (summary.check.validity.as_str(), summary.check.source.as_str()),
            ("unknown", CHECK)
        );
        let html = std::fs::read_to_string(dir.join(REPORT)).unwrap();
        assert!(html.contains("edgekv lab run s --seed 99"));

        // Unreadable companions are set aside with a note, not fatal.
        std::fs::write(dir.join(RUN), "{").unwrap();
        std::fs::write(dir.join(CHECK), "[]").unwrap();
        let summary = report_dir(&dir).unwrap();
        assert!(!summary.run.meta_present);
        assert_eq!(summary.check.source, "computed");
        assert!(
            summary.notes.iter().any(|n| n.starts_with("run.json does not parse")),
            "{:?}",
            summary.notes
        );
        assert!(summary.notes.iter().any(|n| n.starts_with("check.json does not parse")));

        // A malformed history is an error naming the file.
        std::fs::write(dir.join(HISTORY), "nonsense\n").unwrap();
        let err = report_dir(&dir).unwrap_err().to_string();
        assert!(err.contains(HISTORY), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
