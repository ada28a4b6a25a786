//! The reaper: the tasks of a local run never outlive `onebox run`, however it ends.
//!
//! A task runs in its own process group, which the local backend kills when the task ends, when
//! its timeout passes and when the run is stopped. That covers every end the runner sees, but
//! not its own sudden death: after a SIGKILL, an out-of-memory kill or a crash, the groups of
//! the running tasks would keep running, unseen, and `--resume` would start their work again
//! beside them.
//!
//! So a local run starts one small helper first: a `/bin/sh` loop in its own process group,
//! ignoring the terminal's signals, that reads lines from a pipe only the runner can write
//! (`+ PGID` when a task's group starts, `- PGID` when it is gone). When the pipe reaches its
//! end, the helper kills every group still listed. The runner closes the pipe when the run is
//! over (all groups gone, so nothing is killed); the kernel closes it when the runner dies, and
//! the helper then kills what the runner left running. No thread waits for it, no signal is
//! sent to a group that is not listed, and the helper costs no CPU while idle.
//!
//! A group is listed only once its leader's pid is known, a moment after the process exists;
//! and a task's process may leave its group (`setsid`, a daemon that double-forks). Both are
//! found by a mark: every task of the run has `ONEBOX_RUNNER_ID` in its environment, which its
//! descendants inherit, and at the end the helper also kills every process whose environment
//! at its start held this run's mark (read from `/proc/PID/environ`).
//!
//! What is guaranteed where: on Linux, every process of a task ends with the task's group when
//! the task ends, and with the run, however `onebox run` ends, unless it cleared its
//! environment and left the group. On other Unixes (no `/proc`), what stays in the group.

use std::io::Write as _;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;

/// The helper's loop: the groups listed when its input ends are killed, then the processes
/// started with the mark `$1` (`ONEBOX_RUNNER_ID=...`) in their environment.
const SCRIPT: &str = r#"trap '' HUP INT TERM QUIT PIPE
groups=' '
while read -r op pg; do
  case $op in
    +) groups="$groups$pg " ;;
    -) case $groups in *" $pg "*) groups="${groups%% $pg *} ${groups#* $pg }" ;; esac ;;
  esac
done
for pg in $groups; do kill -9 -"$pg" 2>/dev/null; done
for round in 1 2; do
  for f in $(grep -lzxF -e "$1" /proc/[0-9]*/environ 2>/dev/null); do
    p=${f#/proc/}; kill -9 "${p%/environ}" 2>/dev/null
  done
done
"#;

/// The name of the variable that marks every process of a local run.
pub(crate) const MARK: &str = "ONEBOX_RUNNER_ID";

/// The running helper and the write end of its pipe.
pub(crate) struct Reaper {
    pipe: Mutex<Option<ChildStdin>>,
    helper: Child,
}

impl Reaper {
    /// Starts the helper for the tasks marked with `MARK=id`.
    pub(crate) fn start(id: &str) -> std::io::Result<Reaper> {
        let mut helper = Command::new("/bin/sh")
            .arg("-c")
            .arg(SCRIPT)
            .arg("onebox-reaper")
            .arg(format!("{MARK}={id}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()?;
        let pipe = helper.stdin.take();
        Ok(Reaper {
            pipe: Mutex::new(pipe),
            helper,
        })
    }

    fn say(&self, line: String) {
        let mut pipe = self.pipe.lock().unwrap_or_else(|e| e.into_inner());
        // One write of a few bytes: atomic on a pipe. A helper that died (killed by hand)
        // makes this fail; the run goes on without it.
        if let Some(p) = pipe.as_mut()
            && p.write_all(line.as_bytes()).is_err()
        {
            *pipe = None;
        }
    }

    /// A task's process group started: kill it if the runner dies.
    pub(crate) fn watch(&self, pgid: i32) {
        self.say(format!("+ {pgid}\n"));
    }

    /// A task's process group is gone (killed at the task's end): forget it.
    pub(crate) fn forget(&self, pgid: i32) {
        self.say(format!("- {pgid}\n"));
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        // Closing the pipe ends the helper's loop; every group was forgotten by now.
        drop(self.pipe.lock().unwrap_or_else(|e| e.into_inner()).take());
        let _ = self.helper.wait();
    }
}
