//! The `onebox_run` library API against a plain sequential model of what each task does.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use onebox_run::{self as run, ProgressMode, RunOptions, TaskState};
use proptest::prelude::*;

fn spec(dir: &std::path::Path) -> run::RunSpec {
    run::spec::parse_run(
        &format!(
            "results:\n  class_spec: LocalResults\n  path: {}/{{name}}\n",
            dir.display()
        ),
        "run.yaml",
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Whatever the batch and the parallelism, each task's files say what running it alone
    /// would say.
    #[test]
    fn every_task_ends_as_it_would_alone(
        jobs in proptest::collection::vec((0i32..4, 0u32..3), 0..10),
        parallel in 1usize..4,
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let mut yaml = String::from("tasks:\n");
        if jobs.is_empty() {
            yaml = "tasks: []\n".into();
        }
        for (i, (code, retries)) in jobs.iter().enumerate() {
            yaml.push_str(&format!(
                "  - command: echo t{i}; exit {code}\n    name: job-{i}\n    retries: {retries}\n"
            ));
        }
        let tasks = run::spec::parse_tasks(&yaml, "tasks.yaml").unwrap();
        let opts = RunOptions {
            max_parallel: Some(parallel),
            progress: ProgressMode::Quiet,
            ..RunOptions::new("p")
        };
        let report = run::run(&spec(tmp.path()), &tasks, &opts).unwrap();
        prop_assert_eq!(report.succeeded(), jobs.iter().all(|(c, _)| *c == 0));
        prop_assert_eq!(report.tasks.len(), jobs.len());
        for (i, ((code, retries), rec)) in jobs.iter().zip(&report.tasks).enumerate() {
            let dir = tmp.path().join("p").join(format!("job-{i}"));
            let status = std::fs::read_to_string(dir.join("status")).unwrap();
            prop_assert_eq!(status, format!("{code}\n"));
            let out = std::fs::read_to_string(dir.join("stdout")).unwrap();
            prop_assert_eq!(out, format!("t{i}\n"));
            let attempts = if *code == 0 { 1 } else { retries + 1 };
            prop_assert_eq!(rec.attempts, attempts);
            prop_assert_eq!(rec.exit_code, Some(*code));
            let want = if *code == 0 { TaskState::Done } else { TaskState::Failed };
            prop_assert_eq!(rec.state, want);
            prop_assert_eq!(&rec.name, &format!("job-{i}"));
        }
        // `onebox status` reads the same records back from the files.
        let (_, again) = run::status(&spec(tmp.path()), "p").unwrap();
        prop_assert_eq!(again, report.tasks);
    }
}

#[test]
fn the_stop_flag_interrupts_a_run_from_another_thread() {
    let tmp = tempfile::tempdir().unwrap();
    let tasks = run::spec::parse_tasks(
        "tasks:\n  - command: sleep 30\n  - command: sleep 30\n  - command: echo never\n",
        "t",
    )
    .unwrap();
    let opts = RunOptions {
        max_parallel: Some(2),
        progress: ProgressMode::Quiet,
        ..RunOptions::new("s")
    };
    let stop = opts.stop.clone();
    let root = tmp.path().join("s");
    let watcher = std::thread::spawn(move || {
        let start = Instant::now();
        while !(root.join("0/stdout").exists() && root.join("1/stdout").exists()) {
            assert!(start.elapsed() < Duration::from_secs(20));
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(100));
        stop.store(true, Ordering::SeqCst);
    });
    let start = Instant::now();
    let report = run::run(&spec(tmp.path()), &tasks, &opts).unwrap();
    watcher.join().unwrap();
    assert!(start.elapsed() < Duration::from_secs(20));
    assert!(report.interrupted && !report.succeeded());
    let states: Vec<TaskState> = report.tasks.iter().map(|t| t.state).collect();
    assert_eq!(
        states,
        [
            TaskState::Interrupted,
            TaskState::Interrupted,
            TaskState::Pending
        ]
    );
}
