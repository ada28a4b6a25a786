//! `onebox run` and `onebox status` on real job files, checked on the files they leave.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::jobs::{alive, onebox, signal, start_onebox, text, tree, wait_for, write};

fn run_yaml(dir: &Path, extra: &str) -> PathBuf {
    let p = dir.join("run.yaml");
    write(
        &p,
        &format!(
            "executor:\n  class_spec: LocalExecutor\nresults:\n  class_spec: LocalResults\n  path: {}/results/{{name}}\n{extra}",
            dir.display()
        ),
    );
    p
}

fn summary(root: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(root.join("summary.json")).unwrap()).unwrap()
}

fn fib(n: u64) -> u64 {
    let (mut a, mut b) = (0u64, 1u64);
    for _ in 0..n {
        (a, b) = (b, a + b);
    }
    a
}

/// The Julia example of Saturn Run's documentation, with a stand-in `julia` on PATH.
#[test]
fn julia_example_gives_the_expected_results_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // The stand-in runs the "script" only if file_syncs put it in place.
    write(
        &d.join("bin/julia"),
        "#!/bin/sh\n[ -f \"$1\" ] || { echo \"julia: no such file $1\" >&2; exit 2; }\nn=$2\nr=$(awk -v n=\"$n\" 'BEGIN { a = 0; b = 1; for (i = 0; i < n; i++) { t = a + b; a = b; b = t }; printf \"%d\", a }')\necho \"fibonacci($n) = $r\"\necho \"$r\" > \"$RESULTS_DIR/fib.txt\"\n",
    );
    std::fs::set_permissions(
        d.join("bin/julia"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    write(&d.join("src/julia-example/fibonacci.jl"), "# fib\n");
    write(&d.join("src/julia-example/.git/HEAD"), "ref\n");
    let example = d.join("workspace/julia-example");
    let run = d.join("run.yaml");
    write(
        &run,
        &format!(
            "executor:\n  class_spec: DaskExecutor\n  cluster_class: LocalCluster\nresults:\n  class_spec: LocalResults\n  path: {}/results/{{name}}\nfile_syncs:\n  - src: {}/src/julia-example/\n    dest: {}/\n",
            d.display(),
            d.display(),
            example.display()
        ),
    );
    let ns = [12u64, 30, 5, 13];
    let mut tasks = String::from("tasks:\n");
    for n in ns {
        tasks.push_str(&format!(
            "  - command: julia {}/fibonacci.jl {n}\n",
            example.display()
        ));
    }
    write(&d.join("tasks.yaml"), &tasks);
    let o = onebox(
        &["run", "run.yaml", "tasks.yaml", "--name", "my-job"],
        d,
        Some(&d.join("bin")),
    );
    assert!(o.status.success(), "{}", text(&o));

    let root = d.join("results/my-job");
    let mut want = BTreeMap::new();
    for (i, n) in ns.iter().enumerate() {
        want.insert(format!("{i}/"), Vec::new());
        want.insert(
            format!("{i}/stdout"),
            format!("fibonacci({n}) = {}\n", fib(*n)).into_bytes(),
        );
        want.insert(format!("{i}/stderr"), Vec::new());
        want.insert(format!("{i}/status"), b"0\n".to_vec());
        want.insert(format!("{i}/results/"), Vec::new());
        want.insert(
            format!("{i}/results/fib.txt"),
            format!("{}\n", fib(*n)).into_bytes(),
        );
    }
    assert_eq!(tree(&root), want);
    assert!(example.join("fibonacci.jl").is_file());
    assert!(!example.join(".git").exists(), ".git must not be synced");

    let s = summary(&root);
    let tasks = s["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 4);
    for (i, t) in tasks.iter().enumerate() {
        assert_eq!(t["name"], i.to_string());
        assert_eq!(t["state"], "done");
        assert_eq!(t["exit_code"], 0);
        assert_eq!(t["attempts"], 1);
        assert!(t["host"].as_str().is_some_and(|h| !h.is_empty()));
        assert!(t["start"].as_str().unwrap() <= t["end"].as_str().unwrap());
    }
    assert_eq!(s["counts"]["done"], 4);

    let st = onebox(&["status", "run.yaml", "--name", "my-job"], d, None);
    assert!(st.status.success(), "{}", text(&st));
    let out = String::from_utf8_lossy(&st.stdout);
    assert!(out.starts_with("run my-job ("), "{out}");
    assert!(
        out.contains("4 done, 0 failed, 0 interrupted, 0 running, 0 pending"),
        "{out}"
    );
    // The run is remembered: its name alone finds it.
    let by_name = onebox(&["status", "--name", "my-job"], d, None);
    assert_eq!(by_name.stdout, st.stdout, "{}", text(&by_name));
    let unknown = onebox(&["status", "--name", "never-ran"], d, None);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(text(&unknown).contains("no run named never-ran"));
}

#[test]
fn a_failed_task_does_not_stop_the_others_and_fails_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    run_yaml(d, "");
    write(
        &d.join("tasks.yaml"),
        "tasks:\n  - command: echo one\n    name: one\n  - command: echo bad >&2; exit 7\n    name: bad\n  - command: [printf, '%s|', a b, c]\n    name: argv\n  - command: no-such-program-here\n    shell: false\n    name: missing\n  - command: exit 1\n    retries: 2\n    name: flaky\n",
    );
    let o = onebox(&["run", "run.yaml", "tasks.yaml", "--name", "r"], d, None);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let root = d.join("results/r");
    let t = tree(&root);
    assert_eq!(t["one/stdout"], b"one\n");
    assert_eq!(t["one/status"], b"0\n");
    assert_eq!(t["bad/stderr"], b"bad\n");
    assert_eq!(t["bad/status"], b"7\n");
    assert_eq!(t["argv/stdout"], b"a b|c|");
    assert_eq!(t["missing/status"], b"127\n");
    assert!(String::from_utf8_lossy(&t["missing/stderr"]).contains("cannot start"));
    assert_eq!(t["flaky/status"], b"1\n");
    assert!(t.contains_key("flaky/stdout.attempt1") && t.contains_key("flaky/stderr.attempt2"));
    let s = summary(&root);
    let flaky = &s["tasks"][4];
    assert_eq!(
        (flaky["attempts"].as_u64(), flaky["state"].as_str()),
        (Some(3), Some("failed"))
    );

    let st = onebox(&["status", "--path", "results/r", "--json"], d, None);
    assert_eq!(st.status.code(), Some(1));
    let recs: Value = serde_json::from_slice(&st.stdout).unwrap();
    let states: Vec<&str> = recs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["done", "failed", "done", "failed", "failed"]);
}

#[test]
fn tasks_see_their_environment_and_workdir() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    run_yaml(d, "");
    std::fs::create_dir_all(d.join("wd")).unwrap();
    write(
        &d.join("tasks.yaml"),
        "tasks:\n  - command: echo \"$ONEBOX_TASK_NAME $ONEBOX_RANK $SEED $(pwd)\"; echo \"$RESULTS_DIR\"\n    name: übung-α\n    env: {SEED: 42}\n    workdir: wd\n  - command: echo \"$SATURN_RUN_LOCAL_RANK\"\n",
    );
    let o = onebox(&["run", "run.yaml", "tasks.yaml", "--name", "e"], d, None);
    assert!(o.status.success(), "{}", text(&o));
    let root = d.join("results/e");
    let out = std::fs::read_to_string(root.join("übung-α/stdout")).unwrap();
    let wd = d.join("wd").canonicalize().unwrap();
    assert_eq!(
        out,
        format!(
            "übung-α 0 42 {}\n{}\n",
            wd.display(),
            root.join("übung-α/results").display()
        )
    );
    let rank: usize = std::fs::read_to_string(root.join("1/stdout"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(rank < 2, "the local rank is a slot: {rank}");
}

#[test]
fn a_timeout_kills_the_whole_process_group() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    run_yaml(d, "");
    write(
        &d.join("tasks.yaml"),
        "tasks:\n  - command: sleep 30 & echo $! > \"$RESULTS_DIR/pid\"; wait\n    name: slow\n    timeout: 0.5\n",
    );
    let start = Instant::now();
    let o = onebox(&["run", "run.yaml", "tasks.yaml", "--name", "t"], d, None);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(start.elapsed() < Duration::from_secs(20));
    let root = d.join("results/t");
    assert_eq!(std::fs::read(root.join("slow/status")).unwrap(), b"124\n");
    let pid: i32 = std::fs::read_to_string(root.join("slow/results/pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_for("the grandchild to be gone", || !alive(pid));
    assert_eq!(summary(&root)["tasks"][0]["timed_out"], true);
}

#[test]
fn sigterm_interrupts_and_resume_finishes_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    run_yaml(d, "");
    // Each task logs that it ran; the slow ones wait for a marker unless it exists.
    let log = d.join("ran.log");
    let marker = d.join("marker");
    let mut tasks = String::from("tasks:\n");
    for i in 0..2 {
        tasks.push_str(&format!(
            "  - command: echo quick{i} >> {log}\n    name: quick{i}\n",
            log = log.display()
        ));
    }
    for i in 0..2 {
        tasks.push_str(&format!(
            "  - command: echo slow{i} >> {log}; [ -e {m} ] || {{ sleep 60 & echo $! > \"$RESULTS_DIR/pid\"; wait; }}\n    name: slow{i}\n",
            log = log.display(),
            m = marker.display()
        ));
    }
    tasks.push_str(&format!(
        "  - command: echo last >> {log}\n    name: last\n",
        log = log.display()
    ));
    write(&d.join("tasks.yaml"), &tasks);
    let args = ["run", "run.yaml", "tasks.yaml", "--name", "i"];
    let child = start_onebox(&[&args[..], &["--max-parallel", "2"]].concat(), d);
    let root = d.join("results/i");
    // The shell creates the pid file before it writes the pid: wait for the number itself.
    let pid_of = |i: usize| -> Option<i32> {
        std::fs::read_to_string(root.join(format!("slow{i}/results/pid")))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    wait_for("both slow tasks to start", || {
        (0..2).all(|i| pid_of(i).is_some())
    });
    let pids: Vec<i32> = (0..2).filter_map(pid_of).collect();
    let st = onebox(&["status", "run.yaml", "--name", "i"], d, None);
    let table = String::from_utf8_lossy(&st.stdout);
    assert!(
        table.contains("2 done, 0 failed, 0 interrupted, 2 running, 1 pending"),
        "{table}"
    );
    // A second run of the same name is refused while this one runs.
    let twice = onebox(
        &["run", "run.yaml", "tasks.yaml", "--name", "i", "--resume"],
        d,
        None,
    );
    assert!(text(&twice).contains("already running"), "{}", text(&twice));
    signal(&child, libc::SIGTERM);
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", text(&o));
    for pid in pids {
        wait_for("the task's processes to be gone", || !alive(pid));
    }
    for i in 0..2 {
        assert_eq!(
            std::fs::read(root.join(format!("quick{i}/status"))).unwrap(),
            b"0\n"
        );
        assert_eq!(
            std::fs::read(root.join(format!("slow{i}/status"))).unwrap(),
            b"interrupted\n"
        );
    }
    assert!(!root.join("last/status").exists());
    let st = onebox(&["status", "run.yaml", "--name", "i"], d, None);
    let table = String::from_utf8_lossy(&st.stdout);
    assert!(
        table.contains("2 done, 0 failed, 2 interrupted, 0 running, 1 pending"),
        "{table}"
    );

    // Without --resume, the old results are not mixed with a new run.
    let again = onebox(&["run", "run.yaml", "tasks.yaml", "--name", "i"], d, None);
    assert_eq!(again.status.code(), Some(2));
    assert!(text(&again).contains("--resume"));

    write(&marker, "");
    let o = onebox(
        &["run", "run.yaml", "tasks.yaml", "--name", "i", "--resume"],
        d,
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    let mut ran: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    ran.sort();
    // quick tasks ran once; slow ones twice (interrupted, then resumed); last once.
    assert_eq!(
        ran,
        [
            "last", "quick0", "quick1", "slow0", "slow0", "slow1", "slow1"
        ]
    );
    let s = summary(&root);
    assert_eq!(s["counts"]["done"], 5);
    let st = onebox(&["status", "run.yaml", "--name", "i"], d, None);
    assert!(st.status.success(), "{}", text(&st));

    // --overwrite starts over.
    let o = onebox(
        &[
            "run",
            "run.yaml",
            "tasks.yaml",
            "--name",
            "i",
            "--overwrite",
        ],
        d,
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    let lines = std::fs::read_to_string(&log).unwrap().lines().count();
    assert_eq!(lines, 12);
}

#[test]
fn max_parallel_bounds_the_running_tasks() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    run_yaml(d, "");
    let mut tasks = String::from("tasks:\n");
    for _ in 0..6 {
        tasks.push_str("  - command: date +%s%N; sleep 0.2; date +%s%N\n");
    }
    write(&d.join("tasks.yaml"), &tasks);
    for limit in [1usize, 3] {
        let name = format!("p{limit}");
        let o = onebox(
            &[
                "run",
                "run.yaml",
                "tasks.yaml",
                "--name",
                &name,
                "--max-parallel",
                &limit.to_string(),
            ],
            d,
            None,
        );
        assert!(o.status.success(), "{}", text(&o));
        let iv: Vec<(u128, u128)> = (0..6)
            .map(|i| {
                let out =
                    std::fs::read_to_string(d.join(format!("results/{name}/{i}/stdout"))).unwrap();
                let mut l = out.lines().map(|x| x.parse::<u128>().unwrap());
                (l.next().unwrap(), l.next().unwrap())
            })
            .collect();
        for a in &iv {
            let at_once = iv.iter().filter(|b| b.0 <= a.0 && a.0 < b.1).count();
            assert!(
                at_once <= limit,
                "{at_once} tasks at once with --max-parallel {limit}"
            );
        }
    }
}

#[test]
fn bad_input_is_refused_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let marker = d.join("ran");
    let good_tasks = format!("tasks:\n  - command: touch {}\n", marker.display());
    let cases: Vec<(&str, String, String)> = vec![
        (
            "unknown executor",
            "executor:\n  class_spec: RayExecutor\nresults:\n  class_spec: LocalResults\n  path: results/{name}\n".into(),
            good_tasks.clone(),
        ),
        (
            "unknown field `timout`",
            "results:\n  class_spec: LocalResults\n  path: results/{name}\n".into(),
            format!("{good_tasks}  - command: a\n    timout: 3\n"),
        ),
        (
            "used by an earlier task",
            "results:\n  class_spec: LocalResults\n  path: results/{name}\n".into(),
            format!("{good_tasks}  - command: a\n    name: \"0\"\n"),
        ),
        (
            "cannot contain `/`",
            "results:\n  class_spec: LocalResults\n  path: results/{name}\n".into(),
            format!("{good_tasks}  - command: a\n    name: ../escape\n"),
        ),
        (
            "`command` is missing",
            "results:\n  class_spec: LocalResults\n  path: results/{name}\n".into(),
            format!("{good_tasks}  - name: x\n"),
        ),
        (
            "cannot be written",
            format!(
                "results:\n  class_spec: LocalResults\n  path: {}/{{name}}\n",
                d.join("a-file").display()
            ),
            good_tasks.clone(),
        ),
        (
            "file_syncs: the source",
            "results:\n  class_spec: LocalResults\n  path: results/{name}\nfile_syncs:\n  - src: /no/such/dir/\n    dest: /tmp/x/\n".into(),
            good_tasks.clone(),
        ),
        (
            "S3Results is not supported yet",
            "results:\n  class_spec: S3Results\n  s3_url: s3://bucket/{name}/\n".into(),
            good_tasks.clone(),
        ),
        (
            "this cluster has 0 GPU",
            "results:\n  class_spec: LocalResults\n  path: results/{name}\n".into(),
            format!("{good_tasks}  - command: a\n    gpus: 64\n"),
        ),
    ];
    write(&d.join("a-file"), "not a directory\n");
    for (want, run, tasks) in cases {
        write(&d.join("run.yaml"), &run);
        write(&d.join("tasks.yaml"), &tasks);
        let o = onebox(&["run", "run.yaml", "tasks.yaml", "--name", "x"], d, None);
        assert_eq!(o.status.code(), Some(2), "{want}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want), "expected {want:?} in: {err}");
        assert!(!marker.exists(), "{want}: a task ran");
        assert!(
            !d.join("results/x/0").exists(),
            "{want}: results were written"
        );
    }
}

#[test]
fn dry_run_prints_the_plan_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    run_yaml(d, "");
    write(
        &d.join("tasks.yaml"),
        "tasks:\n  - command: echo a\n    name: a\n    cpus: 2\n    timeout: 90s\n",
    );
    let o = onebox(
        &[
            "run",
            "run.yaml",
            "tasks.yaml",
            "--prefix",
            "nightly",
            "--dry-run",
        ],
        d,
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("results/nightly-"), "{out}");
    assert!(
        out.contains("run      a  [cpus=2 timeout=90s]  echo a"),
        "{out}"
    );
    assert!(!d.join("results").exists());
}

#[test]
fn file_syncs_copy_incrementally_and_skip_same_place() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(&d.join("src/a.txt"), "a\n");
    write(&d.join("src/sub/b.txt"), "b\n");
    write(&d.join("src/.git/config"), "x\n");
    let extra = format!(
        "file_syncs:\n  - src: {s}/\n    dest: {t}/\n  - src: {s}\n",
        s = d.join("src").display(),
        t = d.join("dest").display()
    );
    run_yaml(d, &extra);
    write(
        &d.join("tasks.yaml"),
        &format!(
            "tasks:\n  - command: cat {}/sub/b.txt\n",
            d.join("dest").display()
        ),
    );
    let o = onebox(&["run", "run.yaml", "tasks.yaml", "--name", "s"], d, None);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read(d.join("results/s/0/stdout")).unwrap(), b"b\n");
    assert_eq!(std::fs::read(d.join("dest/a.txt")).unwrap(), b"a\n");
    assert!(!d.join("dest/.git").exists());
    // A file changed at the destination but not at the source stays as it is only if size and
    // time agree; an edited source file is copied again.
    let before = std::fs::metadata(d.join("dest/a.txt"))
        .unwrap()
        .modified()
        .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    write(&d.join("src/sub/b.txt"), "b2\n");
    let o = onebox(&["run", "run.yaml", "tasks.yaml", "--name", "s2"], d, None);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read(d.join("results/s2/0/stdout")).unwrap(),
        b"b2\n"
    );
    let after = std::fs::metadata(d.join("dest/a.txt"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after, "an unchanged file was copied again");
}

#[test]
fn an_empty_batch_succeeds() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    run_yaml(d, "");
    write(&d.join("tasks.yaml"), "tasks: []\n");
    let o = onebox(
        &["run", "run.yaml", "tasks.yaml", "--name", "none"],
        d,
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        summary(&d.join("results/none"))["tasks"],
        serde_json::json!([])
    );
}

#[test]
fn the_shipped_example_runs() {
    let jobs = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/jobs");
    let tmp = tempfile::tempdir().unwrap();
    let name = format!("example-test-{}", std::process::id());
    let file = |f: &str| jobs.join(f).display().to_string();
    let tasks = file("tasks.yaml");
    for run in [file("run.yaml"), file("run-slurm.yaml")] {
        let args = ["run", &run, &tasks, "--name", &name, "--dry-run"];
        let o = onebox(&args, tmp.path(), None);
        assert!(o.status.success(), "{run}: {}", text(&o));
    }
    let run = file("run.yaml");
    let o = onebox(&["run", &run, &tasks, "--name", &name], tmp.path(), None);
    let root = PathBuf::from(format!("/tmp/onebox-results/{name}"));
    let sum = std::fs::read_to_string(root.join("sum-100k/results/sum.txt"));
    let fib30 = std::fs::read_to_string(root.join("fib-30/stdout"));
    let hello = std::fs::read_to_string(root.join("hello/stdout"));
    let _ = std::fs::remove_dir_all(&root);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(sum.unwrap(), format!("{}\n", (1..=100_000u64).sum::<u64>()));
    assert_eq!(fib30.unwrap(), format!("{}\n", fib(30)));
    assert_eq!(hello.unwrap(), "task hello is rank 2\n");
}

/// GET `path` from a local HTTP server; the body, or None while it does not answer.
fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).ok()?;
    reply
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
}

#[test]
fn the_dashboard_of_a_batch_reports_its_tasks() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let run = run_yaml(d, "");
    let tasks = d.join("tasks.yaml");
    write(
        &tasks,
        "tasks:\n  - command: sleep 2\n    name: slow-a\n  - command: sleep 2\n    name: slow-b\n",
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_onebox"))
        .args([
            "run",
            run.to_str().unwrap(),
            tasks.to_str().unwrap(),
            "--name",
            "dash",
            "-q",
            "--dashboard",
            &addr,
        ])
        .current_dir(d)
        .env("ONEBOX_STATE_DIR", d.join("state"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut status: Option<Value> = None;
    wait_for("the dashboard to show both tasks", || {
        status = http_get(&addr, "/api/status").and_then(|b| serde_json::from_str(b.trim()).ok());
        status
            .as_ref()
            .is_some_and(|s| s["totals"]["submitted"].as_u64() == Some(2))
    });
    let groups: Vec<String> = status.unwrap()["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        groups.contains(&"slow-a".to_string()) && groups.contains(&"slow-b".to_string()),
        "{groups:?}"
    );
    assert!(child.wait().unwrap().success());
}
