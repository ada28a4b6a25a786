//! Helpers for the tests that drive `onebox run` and `onebox status` as a user would.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs the `onebox` binary in `cwd` (with its run index under `cwd/state`), with
/// `path_prefix` put first on `PATH` (for stand-in commands).
pub fn onebox(args: &[&str], cwd: &Path, path_prefix: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_onebox"));
    cmd.args(args)
        .current_dir(cwd)
        .env("ONEBOX_THREADS", "2")
        .env("ONEBOX_STATE_DIR", cwd.join("state"));
    if let Some(p) = path_prefix {
        let old = std::env::var("PATH").unwrap_or_default();
        cmd.env("PATH", format!("{}:{old}", p.display()));
    }
    cmd.output().unwrap()
}

/// Starts the `onebox` binary in `cwd` (with its run index under `cwd/state`) without waiting,
/// its output captured, for tests that watch or signal a run while it runs.
pub fn start_onebox(args: &[&str], cwd: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_onebox"))
        .args(args)
        .current_dir(cwd)
        .env("ONEBOX_STATE_DIR", cwd.join("state"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Sends `signal` to `child`.
pub fn signal(child: &Child, signal: i32) {
    // SAFETY: kill(2) on a child process the test started and has not yet reaped.
    unsafe {
        libc::kill(child.id() as i32, signal);
    }
}

/// A process's exit status and output, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Writes `body` to `path`, making its directory.
pub fn write(path: &Path, body: &str) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).unwrap();
    }
    std::fs::write(path, body).unwrap();
}

/// Every file under `root` but onebox's own (`.onebox/`, `summary.json`), with its bytes;
/// directories as `name/` with no bytes.
pub fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            if rel == ".onebox" || rel == "summary.json" {
                continue;
            }
            if p.is_dir() {
                out.insert(format!("{rel}/"), Vec::new());
                walk(root, &p, out);
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Polls `ready` every 20 ms; fails the test after 20 s.
pub fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// True when `pid` is a live (not zombie) process.
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}
