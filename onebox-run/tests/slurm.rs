//! The Slurm executor against a real Slurm. The tests are ignored by a plain `cargo test`
//! (they need a Slurm controller); run them with `scripts/slurm.sh start`,
//! `export SLURM_CONF=/tmp/onebox-slurm/etc/slurm.conf`, then
//! `cargo test -p onebox-run --test slurm -- --ignored`. Asked to run without Slurm, they fail
//! saying what is missing.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::jobs::{onebox, signal, start_onebox, text, tree, write};

/// Fails the test, saying what is missing, unless a Slurm is reachable.
fn need_slurm() {
    let sbatch = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("sbatch").is_file()));
    assert!(sbatch, "sbatch is not on PATH (run scripts/slurm.sh start)");
    assert!(
        std::env::var_os("SLURM_CONF").is_some(),
        "SLURM_CONF is not set (export it as scripts/slurm.sh start prints)"
    );
}

fn slurm_run_yaml(d: &Path, extra: &str) {
    write(
        &d.join("run.yaml"),
        &format!(
            "executor:\n  class_spec: SlurmExecutor\n  mem: 100M\n  poll_interval: 0.2\n{extra}results:\n  class_spec: LocalResults\n  path: {}/results/{{name}}\n",
            d.display()
        ),
    );
}

#[test]
#[ignore = "needs Slurm: scripts/slurm.sh start, export SLURM_CONF, then -- --ignored"]
fn slurm_gives_the_local_results_layout() {
    need_slurm();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    slurm_run_yaml(d, "");
    write(
        &d.join("tasks.yaml"),
        "tasks:\n  - command: echo hello; echo 42 > \"$RESULTS_DIR/answer\"\n    name: hello\n  - command: echo oops >&2; exit 3\n    name: oops\n  - command: [printf, '%s|', a b, \"$HOME\"]\n    name: argv\n  - command: echo \"$ONEBOX_TASK_NAME $ONEBOX_RANK $SEED\"\n    name: übung\n    env: {SEED: 7}\n",
    );
    let o = onebox(&["run", "run.yaml", "tasks.yaml", "--name", "s"], d, None);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let root = d.join("results/s");
    let mut want: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (name, out, err, status) in [
        ("hello", "hello\n", "", "0\n"),
        ("oops", "", "oops\n", "3\n"),
        ("argv", "a b|$HOME|", "", "0\n"),
        ("übung", "übung 3 7\n", "", "0\n"),
    ] {
        want.insert(format!("{name}/"), Vec::new());
        want.insert(format!("{name}/results/"), Vec::new());
        want.insert(format!("{name}/stdout"), out.into());
        want.insert(format!("{name}/stderr"), err.into());
        want.insert(format!("{name}/status"), status.into());
    }
    want.insert("hello/results/answer".into(), b"42\n".to_vec());
    assert_eq!(tree(&root), want);

    let st = onebox(&["status", "run.yaml", "--name", "s", "--json"], d, None);
    let recs: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    let got: Vec<(String, Option<i64>, u64)> = recs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["state"].as_str().unwrap().to_owned(),
                r["exit_code"].as_i64(),
                r["attempts"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("done".to_owned(), Some(0), 1),
            ("failed".to_owned(), Some(3), 1),
            ("done".to_owned(), Some(0), 1),
            ("done".to_owned(), Some(0), 1),
        ]
    );
}

#[test]
#[ignore = "needs Slurm: scripts/slurm.sh start, export SLURM_CONF, then -- --ignored"]
fn slurm_gives_gpus_timeouts_retries_and_groups() {
    need_slurm();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    slurm_run_yaml(d, "  tasks_per_job: 2\n");
    let mut tasks = String::from(
        "tasks:\n  - command: echo \"gpu=$CUDA_VISIBLE_DEVICES\"\n    name: one-gpu\n    gpus: 1\n  - command: echo \"gpu=$CUDA_VISIBLE_DEVICES\"\n    name: two-gpus\n    gpus: 2\n  - command: sleep 30\n    name: slow\n    timeout: 1\n  - command: exit 4\n    name: flaky\n    retries: 1\n",
    );
    for i in 0..5 {
        tasks.push_str(&format!("  - command: echo {i}\n    name: tiny{i}\n"));
    }
    write(&d.join("tasks.yaml"), &tasks);
    let o = onebox(&["run", "run.yaml", "tasks.yaml", "--name", "g"], d, None);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let root = d.join("results/g");
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
    assert_eq!(read("one-gpu/stdout"), "gpu=0\n");
    assert_eq!(read("two-gpus/stdout"), "gpu=0,1\n");
    assert_eq!(read("slow/status"), "124\n");
    assert_eq!(read("flaky/status"), "4\n");
    assert!(root.join("flaky/stdout.attempt1").exists());
    for i in 0..5 {
        assert_eq!(read(&format!("tiny{i}/stdout")), format!("{i}\n"));
        assert_eq!(read(&format!("tiny{i}/status")), "0\n");
    }
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["executor"], "slurm");
    assert_eq!(summary["tasks"][2]["timed_out"], true);
    assert_eq!(summary["tasks"][3]["attempts"], 2);
    // Five tiny tasks in elements of two: three array elements.
    let tiny_elements = std::fs::read_dir(root.join(".onebox/slurm"))
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            let listed = std::fs::read_to_string(p.join("0")).ok()?;
            listed.lines().any(|l| l == "4").then_some(p)
        })
        .map(|p| {
            std::fs::read_dir(p)
                .unwrap()
                .filter(|e| {
                    let n = e.as_ref().unwrap().file_name();
                    n.to_string_lossy().parse::<u32>().is_ok()
                })
                .count()
        })
        .next();
    assert_eq!(tiny_elements, Some(3));
}

#[test]
#[ignore = "needs Slurm: scripts/slurm.sh start, export SLURM_CONF, then -- --ignored"]
fn slurm_interrupt_cancels_and_resume_finishes() {
    need_slurm();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    slurm_run_yaml(d, "");
    let marker = d.join("marker");
    write(
        &d.join("tasks.yaml"),
        &format!(
            "tasks:\n  - command: echo quick\n    name: quick\n  - command: \"[ -e {m} ] || sleep 60\"\n    name: slow\n",
            m = marker.display()
        ),
    );
    let child = start_onebox(&["run", "run.yaml", "tasks.yaml", "--name", "i"], d);
    let root = d.join("results/i");
    let start = Instant::now();
    while !(root.join("slow/stdout").exists() && root.join("quick/status").exists()) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the tasks did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    signal(&child, libc::SIGINT);
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", text(&o));
    assert_eq!(
        std::fs::read(root.join("slow/status")).unwrap(),
        b"interrupted\n"
    );
    assert_eq!(std::fs::read(root.join("quick/status")).unwrap(), b"0\n");
    write(&marker, "");
    let o = onebox(
        &["run", "run.yaml", "tasks.yaml", "--name", "i", "--resume"],
        d,
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read(root.join("slow/status")).unwrap(), b"0\n");
    assert!(String::from_utf8_lossy(&o.stderr).contains("1 task(s) already done"));
}

#[test]
#[ignore = "needs Slurm: scripts/slurm.sh start, export SLURM_CONF, then -- --ignored"]
fn slurm_records_what_happened_to_a_cancelled_element() {
    need_slurm();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    slurm_run_yaml(d, "");
    write(
        &d.join("tasks.yaml"),
        "tasks:\n  - command: sleep 60\n    name: victim\n  - command: echo fine\n    name: fine\n",
    );
    let child = start_onebox(&["run", "run.yaml", "tasks.yaml", "--name", "c"], d);
    let root = d.join("results/c");
    let start = Instant::now();
    let job = loop {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the task did not start"
        );
        let info: Option<serde_json::Value> = std::fs::read(root.join(".onebox/run.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let id = info.and_then(|i| i["slurm_jobs"][0].as_str().map(str::to_owned));
        if let Some(id) = id
            && root.join("victim/stdout").exists()
        {
            break id;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // Someone else cancels the element: the wrapper never writes the status.
    let ok = Command::new("scancel")
        .arg(format!("{job}_0"))
        .status()
        .unwrap();
    assert!(ok.success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(
        std::fs::read(root.join("victim/status")).unwrap(),
        b"cancelled\n"
    );
    assert_eq!(std::fs::read(root.join("fine/status")).unwrap(), b"0\n");
}
