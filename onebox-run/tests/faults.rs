//! `onebox run` when it is killed, stopped by a closed terminal, or finds a stale run record:
//! no task outlives it, no task's work is done twice, no attempt's output is lost.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

mod common;
use common::jobs::{alive, onebox, signal, start_onebox, text, wait_for, write};

fn run_yaml(dir: &Path) {
    write(
        &dir.join("run.yaml"),
        &format!(
            "executor:\n  class_spec: LocalExecutor\nresults:\n  class_spec: LocalResults\n  path: {}/results/{{name}}\n",
            dir.display()
        ),
    );
}

/// SplitMix64: reproducible kill moments and signals.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }
}

/// The first line of `onebox status` (the counts).
fn counts(d: &Path, name: &str) -> String {
    let st = onebox(&["status", "run.yaml", "--name", name], d, None);
    let table = String::from_utf8_lossy(&st.stdout).into_owned();
    table.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn killing_the_runner_at_random_moments_runs_every_task_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    run_yaml(d);
    let log = d.join("work.log");
    let mut rng = Rng(20261207);
    let names: Vec<String> = (0..18).map(|i| format!("job{i}")).collect();
    let mut tasks = String::from("tasks:\n");
    for name in &names {
        // The task's shell records its pid (its group's), works a while, then does its one side
        // effect: a line in the shared log, with the time it was done.
        tasks.push_str(&format!(
            "  - command: echo $$ > \"$RESULTS_DIR/pid\"; sleep 0.{}; echo {name} $(date +%s%N) >> {log}\n    name: {name}\n",
            2 + rng.below(3),
            log = log.display()
        ));
    }
    write(&d.join("tasks.yaml"), &tasks);
    let root = d.join("results/k");
    let signals = [
        libc::SIGKILL,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGKILL,
        libc::SIGQUIT,
        libc::SIGINT,
        libc::SIGKILL,
    ];
    let mut kills = 0;
    let mut kill_times: Vec<u128> = Vec::new();
    for (round, &sig) in signals.iter().enumerate() {
        let mut args = vec!["run", "run.yaml", "tasks.yaml", "--name", "k", "-q"];
        args.extend(["--max-parallel", "3"]);
        if round > 0 {
            args.push("--resume");
        }
        let child = start_onebox(&args, d);
        std::thread::sleep(Duration::from_millis(100 + rng.below(400)));
        kill_times.push(now_ns());
        signal(&child, sig);
        let o = child.wait_with_output().unwrap();
        if o.status.success() {
            break; // it finished before the signal came
        }
        kills += 1;
        // Whatever the runner was running is gone, however the runner ended.
        for name in &names {
            let pid_file = root.join(name).join("results/pid");
            let pid = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok());
            if let Some(pid) = pid {
                wait_for(
                    &format!("{name}'s shell {pid} to end (signal {sig})"),
                    || !alive(pid),
                );
                let _ = std::fs::remove_file(&pid_file);
            }
        }
        let line = counts(d, "k");
        assert!(
            line.contains(" 0 running"),
            "round {round}, signal {sig}: {line}"
        );
    }
    assert!(kills >= 3, "only {kills} runs were cut short");
    let o = onebox(
        &["run", "run.yaml", "tasks.yaml", "--name", "k", "--resume"],
        d,
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    // Each task's work was done once. The one exception a runner cannot avoid: work done at the
    // moment of a kill, by a task whose status was not yet written (the status file is the
    // commit point: the task had just ended) or that the kill had not reached yet (stopping a
    // group takes a moment): it runs again. Such a repeat follows work done within 100 ms of a
    // kill; any other repeat (an orphan finishing later, a done task run again) is a bug.
    let mut done: BTreeMap<String, Vec<u128>> = BTreeMap::new();
    for line in std::fs::read_to_string(&log).unwrap().lines() {
        let (name, at) = line.split_once(' ').unwrap();
        done.entry(name.to_owned())
            .or_default()
            .push(at.parse().unwrap());
    }
    let ran: Vec<&String> = done.keys().collect();
    let mut want: Vec<&String> = names.iter().collect();
    want.sort();
    assert_eq!(ran, want, "every task's work done");
    for (name, times) in &mut done {
        times.sort();
        for &t in &times[..times.len() - 1] {
            let at_a_kill = kill_times.iter().any(|&k| k.abs_diff(t) < 100_000_000);
            assert!(
                at_a_kill,
                "{name}'s work was done again after it was done at {t} (kills at {kill_times:?})"
            );
        }
    }
}

/// Nanoseconds since the Unix epoch, as `date +%s%N` prints them.
fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[test]
fn a_stale_run_record_whose_pid_is_alive_does_not_block_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    run_yaml(d);
    let flag = d.join("flag");
    write(
        &d.join("tasks.yaml"),
        &format!(
            "tasks:\n  - command: echo ok\n    name: a\n  - command: test -e {}\n    name: b\n",
            flag.display()
        ),
    );
    let o = onebox(&["run", "run.yaml", "tasks.yaml", "--name", "s"], d, None);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    // As if the runner had crashed and its pid now belonged to another live process (this one).
    let root = d.join("results/s");
    let info = root.join(".onebox/run.json");
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&info).unwrap()).unwrap();
    doc["pid"] = serde_json::json!(std::process::id());
    std::fs::write(&info, serde_json::to_vec(&doc).unwrap()).unwrap();
    std::fs::remove_file(root.join("summary.json")).unwrap();
    assert!(counts(d, "s").contains("0 running"), "{}", counts(d, "s"));
    write(&flag, "");
    let o = onebox(
        &["run", "run.yaml", "tasks.yaml", "--name", "s", "--resume"],
        d,
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn resume_keeps_the_output_of_every_earlier_attempt() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    run_yaml(d);
    let count = d.join("count");
    // Fails on its first three attempts (printing which), succeeds on the fourth.
    write(
        &d.join("tasks.yaml"),
        &format!(
            "tasks:\n  - command: n=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}; echo out$n; echo err$n >&2; [ $n -ge 4 ]\n    name: flaky\n    retries: 1\n",
            c = count.display()
        ),
    );
    let args = ["run", "run.yaml", "tasks.yaml", "--name", "r"];
    let o = onebox(&args, d, None);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let resume = [&args[..], &["--resume"]].concat();
    let o = onebox(&resume, d, None);
    assert!(o.status.success(), "{}", text(&o));
    let task = d.join("results/r/flaky");
    let read = |f: &str| std::fs::read_to_string(task.join(f)).unwrap();
    for n in 1..=3 {
        assert_eq!(read(&format!("stdout.attempt{n}")), format!("out{n}\n"));
        assert_eq!(read(&format!("stderr.attempt{n}")), format!("err{n}\n"));
    }
    assert_eq!(read("stdout"), "out4\n");
    assert_eq!(read("status"), "0\n");
}

#[test]
fn a_process_that_leaves_its_task_group_ends_with_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    run_yaml(d);
    // `setsid` puts the sleep in a session of its own, out of reach of a group kill.
    write(
        &d.join("tasks.yaml"),
        "tasks:\n  - command: setsid sleep 60 & echo $! > \"$RESULTS_DIR/pid\"\n    name: escape\n",
    );
    let o = onebox(&["run", "run.yaml", "tasks.yaml", "--name", "e"], d, None);
    assert!(o.status.success(), "{}", text(&o));
    let pid: i32 = std::fs::read_to_string(d.join("results/e/escape/results/pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_for("the escaped process to end", || !alive(pid));
}
