//! A run's output directory: `history.jsonl` in, and what the checker writes next to it
//! (`check.json`, and `history.edn` for Jepsen's tools).

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::check::{check, CheckReport};
use crate::history::{History, HistoryError};

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
    let history = read_history(dir)?;
    let report = check(&history);
    let json = serde_json::to_vec_pretty(&report)
        .map_err(|e| FilesError::Io { path: dir.join(CHECK), error: std::io::Error::other(e) })?;
    write(&dir.join(CHECK), &json)?;
    write(&dir.join(EDN), crate::edn::to_edn(&history).as_bytes())?;
    Ok(report)
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
}
