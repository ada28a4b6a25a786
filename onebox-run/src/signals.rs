//! SIGINT, SIGTERM, SIGHUP and SIGQUIT, turned into a flag the bookkeeping loop polls.
//!
//! The handler only stores the signal's number in an atomic (all a signal handler may safely
//! do); the executor's loop sees it within a tick and stops the run in order. Task processes
//! live in their own process groups, so the terminal's Ctrl-C reaches only `onebox run`, which
//! then stops them itself. A closed terminal (SIGHUP) and Ctrl-\ (SIGQUIT) stop a run the
//! same way: in order, with each task's status written.

use std::sync::atomic::{AtomicI32, Ordering};

static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    RECEIVED.store(signal, Ordering::SeqCst);
}

/// Catches SIGINT, SIGTERM, SIGHUP and SIGQUIT from now on (for the rest of the process).
pub fn install() -> std::io::Result<()> {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; the handler only
        // does an atomic store, which is async-signal-safe.
        let rc = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The signal caught, if any.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}
