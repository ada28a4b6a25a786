//! The Dask executor against a real Dask scheduler (a `distributed.LocalCluster` started by the
//! test). The tests are ignored by a plain `cargo test` (they need Python's `distributed`); run
//! them with `cargo test -p onebox-run --test dask -- --ignored` after
//! `pip install "dask[distributed]"`. Asked to run without it, they fail saying so.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::jobs::{onebox, signal, start_onebox, text, write};

/// Fails the test, saying what is missing, unless `python3` can import `distributed`.
fn need_dask() {
    let ok = Command::new("python3")
        .args(["-c", "import distributed"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "python3 cannot import distributed (pip install \"dask[distributed]\")"
    );
}

/// A Dask cluster of two single-thread worker processes, stopped on drop.
struct DaskCluster {
    child: Child,
    address: String,
}

impl DaskCluster {
    fn start() -> DaskCluster {
        let mut child = Command::new("python3")
            .args([
                "-c",
                "from distributed import LocalCluster\nimport sys, time\nc = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)\nprint(c.scheduler_address, flush=True)\nsys.stdin.read()\nc.close()\n",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line.trim().to_owned();
        assert!(
            address.starts_with("tcp://"),
            "no scheduler address: {line:?}"
        );
        DaskCluster { child, address }
    }
}

impl Drop for DaskCluster {
    fn drop(&mut self) {
        drop(self.child.stdin.take()); // EOF: the cluster closes itself
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_yaml(d: &Path, address: &str) {
    write(
        &d.join("run.yaml"),
        &format!(
            "executor:\n  class_spec: DaskExecutor\n  scheduler_address: {address}\nresults:\n  class_spec: LocalResults\n  path: {}/results/{{name}}\n",
            d.display()
        ),
    );
}

#[test]
#[ignore = "needs dask.distributed: pip install \"dask[distributed]\", then -- --ignored"]
fn dask_gives_the_local_results_layout_and_resumes() {
    need_dask();
    let cluster = DaskCluster::start();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    run_yaml(d, &cluster.address);
    let marker = d.join("marker");
    write(
        &d.join("tasks.yaml"),
        &format!(
            "tasks:\n  - command: echo hello; echo 42 > \"$RESULTS_DIR/answer\"\n    name: hello\n  - command: echo oops >&2; exit 3\n    name: oops\n  - command: echo \"$ONEBOX_TASK_NAME $ONEBOX_RANK $SEED\"\n    name: übung\n    env: {{SEED: 7}}\n  - command: sleep 30\n    name: slow\n    timeout: 0.5\n  - command: \"[ -e {m} ]\"\n    name: later\n",
            m = marker.display()
        ),
    );
    let o = onebox(&["run", "run.yaml", "tasks.yaml", "--name", "k"], d, None);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let root = d.join("results/k");
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
    let got: BTreeMap<&str, String> = [
        ("hello/stdout", read("hello/stdout")),
        ("hello/results/answer", read("hello/results/answer")),
        ("oops/stderr", read("oops/stderr")),
        ("oops/status", read("oops/status")),
        ("übung/stdout", read("übung/stdout")),
        ("slow/status", read("slow/status")),
        ("later/status", read("later/status")),
    ]
    .into_iter()
    .collect();
    let want: BTreeMap<&str, String> = [
        ("hello/stdout", "hello\n"),
        ("hello/results/answer", "42\n"),
        ("oops/stderr", "oops\n"),
        ("oops/status", "3\n"),
        ("übung/stdout", "übung 2 7\n"),
        ("slow/status", "124\n"),
        ("later/status", "1\n"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_owned()))
    .collect();
    assert_eq!(got, want);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["executor"], "dask");
    assert_eq!(summary["tasks"][3]["timed_out"], true);

    write(&marker, "");
    write(
        &d.join("tasks.yaml"),
        &std::fs::read_to_string(d.join("tasks.yaml"))
            .unwrap()
            .replace("exit 3", "exit 0")
            .replace("sleep 30", "true"),
    );
    let o = onebox(
        &["run", "run.yaml", "tasks.yaml", "--name", "k", "--resume"],
        d,
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("2 task(s) already done"));
}

#[test]
#[ignore = "needs dask.distributed: pip install \"dask[distributed]\", then -- --ignored"]
fn dask_refuses_gpu_tasks_without_gpu_workers() {
    need_dask();
    let cluster = DaskCluster::start();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    run_yaml(d, &cluster.address);
    write(
        &d.join("tasks.yaml"),
        &format!(
            "tasks:\n  - command: touch {}\n    gpus: 1\n",
            d.join("ran").display()
        ),
    );
    let o = onebox(&["run", "run.yaml", "tasks.yaml", "--name", "g"], d, None);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--resources GPU=N"), "{}", text(&o));
    assert!(!d.join("ran").exists());
}

#[test]
#[ignore = "needs dask.distributed: pip install \"dask[distributed]\", then -- --ignored"]
fn dask_interrupt_stops_running_tasks() {
    need_dask();
    let cluster = DaskCluster::start();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    run_yaml(d, &cluster.address);
    let mut tasks = String::from("tasks:\n");
    for i in 0..4 {
        tasks.push_str(&format!(
            "  - command: sleep 60 & echo $! > \"$RESULTS_DIR/pid\"; wait\n    name: s{i}\n"
        ));
    }
    write(&d.join("tasks.yaml"), &tasks);
    let child = start_onebox(&["run", "run.yaml", "tasks.yaml", "--name", "i"], d);
    let root = d.join("results/i");
    let start = Instant::now();
    // Two workers of one thread: two tasks run, two wait.
    let running = || {
        (0..4)
            .filter(|i| root.join(format!("s{i}/results/pid")).exists())
            .count()
    };
    while running() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the tasks did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(&child, libc::SIGTERM);
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", text(&o));
    let statuses: Vec<Option<String>> = (0..4)
        .map(|i| std::fs::read_to_string(root.join(format!("s{i}/status"))).ok())
        .collect();
    let interrupted = statuses
        .iter()
        .filter(|s| s.as_deref() == Some("interrupted\n"))
        .count();
    let pending = statuses.iter().filter(|s| s.is_none()).count();
    assert_eq!((interrupted, pending), (2, 2), "{statuses:?}");
}
