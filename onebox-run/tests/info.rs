//! `onebox info`: the machine and the cluster that would start on it, as a table and as JSON.
//!
//! The GPU test skips, saying why, when no GPU is detected; on a GPU machine it runs from
//! `scripts/gpu-check.sh` with `ONEBOX_BIN` naming the prebuilt binary.

use onebox::Hardware;

#[test]
fn onebox_info_is_silent_on_stderr_and_prints_json() {
    let bin = env!("CARGO_BIN_EXE_onebox");
    let out = std::process::Command::new(bin)
        .args(["info", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc["hardware"]["cpu_budget"].as_u64().unwrap() >= 1);
    assert!(doc["plan"]["cpu_threads"].as_u64().unwrap() >= 1);
    let table = std::process::Command::new(bin)
        .arg("info")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&table.stdout).contains("cores"));

    let bad = std::process::Command::new(bin)
        .arg("info")
        .env("ONEBOX_MEMORY_LIMIT", "lots")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("lots"));
}

#[test]
fn cuda_visible_devices_selects_by_index_and_uuid() {
    let hw = Hardware::detect();
    let Some(first) = hw.gpus.first() else {
        eprintln!("skipped: no GPU detected");
        return;
    };
    let count = |visible: &str| -> usize {
        // ONEBOX_BIN lets a prebuilt test binary run on another machine (scripts/gpu-check.sh).
        let bin = std::env::var("ONEBOX_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_onebox").to_string());
        let out = std::process::Command::new(bin)
            .args(["info", "--json"])
            .env("CUDA_VISIBLE_DEVICES", visible)
            .output()
            .unwrap();
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        doc["hardware"]["gpus"].as_array().unwrap().len()
    };
    assert_eq!(count("0"), 1);
    assert_eq!(count(&first.uuid), 1);
    assert_eq!(count(&first.uuid[..12]), 1);
    assert_eq!(count(""), 0);
    assert_eq!(count("99"), 0);
}
