//! `edgekv lab check` as users run it: exit codes 0 / 1 / 2 and the files it writes.

use edgekv_tests::must_run;

const PUT: &str = r#"{"type":"op","index":0,"process":0,"region":"wnam","f":"put","key":"k","value":"v","version":"0000000000000001-wnam","invoke":1,"complete":2,"outcome":"ok"}"#;

fn run_check(history: &str) -> (i32, String, serde_json::Value) {
    let dir = tempfile::tempdir().expect("a temp dir");
    std::fs::write(dir.path().join("history.jsonl"), history).expect("write the history");
    let path = dir.path().display().to_string();
    let (status, stderr) = must_run(&["lab", "check", &path], &[]);
    let check = std::fs::read(dir.path().join("check.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(serde_json::Value::Null);
    (status.code().expect("an exit code"), stderr, check)
}

#[test]
fn lab_check_exits_0_1_or_2_and_writes_its_verdict() {
    let kept = r#"{"type":"final","region":"wnam","key":"k","value":"v","version":"0000000000000001-wnam","at":3}"#;
    let (code, _, check) = run_check(&format!("{PUT}\n{kept}\n"));
    assert_eq!((code, check["validity"].as_str()), (0, Some("valid")));

    let lost = r#"{"type":"final","region":"wnam","key":"k","at":3}"#;
    let (code, _, check) = run_check(&format!("{PUT}\n{lost}\n"));
    assert_eq!((code, check["validity"].as_str()), (1, Some("invalid")));
    assert_eq!(check["anomalies"][0]["kind"], "lost_write");
    assert_eq!(check["anomalies"][0]["ops"], serde_json::json!([0]));

    let (code, _, check) = run_check(&format!("{PUT}\n"));
    assert_eq!((code, check["validity"].as_str()), (2, Some("unknown")), "no final reads");

    let (code, stderr, _) = run_check("not json\n");
    assert_eq!(code, 2);
    assert!(stderr.contains("history.jsonl") && stderr.contains("line 1"), "{stderr}");
}
