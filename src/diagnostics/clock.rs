//! The clock task start and end times are read from: the processor's time-stamp counter where
//! the kernel keeps time with it, [`Instant`] elsewhere.
//!
//! On x86-64 Linux whose clock source is `tsc`, [`Instant::now`] itself reads the time-stamp
//! counter (through the vDSO) and scales it; reading the counter directly skips the call and
//! the scaling, which is most of the cost (about 22 ns against 60 ns per reading on a 2-core
//! AMD EPYC under load). The kernel uses that clock source only when the counter runs at a
//! constant rate and agrees across cores, so readings are as trustworthy as `Instant`'s.
//! Readings are turned into nanoseconds later, off the scheduler's threads, with a rate
//! measured against `Instant` over the whole time since the clock was made.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A clock whose readings are cheap to take and converted to time later (see the module docs).
#[derive(Debug)]
pub(crate) struct Clock {
    origin: Instant,
    /// With a usable counter: its value at `since_origin` after `origin`.
    tsc: Option<(u64, Duration)>,
}

/// Turns readings taken before it was made into nanoseconds since the clock's origin.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scale {
    /// Counter value, nanoseconds since the origin at that value, nanoseconds per tick.
    tsc: Option<(u64, f64, f64)>,
}

impl Clock {
    /// A clock counting from `origin`.
    pub(crate) fn new(origin: Instant) -> Clock {
        let tsc = tsc_usable().then(|| paired(origin));
        Clock { origin, tsc }
    }

    /// A reading, to be converted with a [`Scale`] made after it.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        if self.tsc.is_some() {
            rdtsc()
        } else {
            nanos(self.origin.elapsed())
        }
    }

    /// The conversion for every reading taken so far.
    pub(crate) fn scale(&self) -> Scale {
        Scale {
            tsc: self.tsc.map(|(t0, at0)| {
                let (t1, at1) = paired(self.origin);
                let ticks = t1.saturating_sub(t0);
                let ns = at1.saturating_sub(at0).as_nanos() as f64;
                let rate = if ticks == 0 { 0.0 } else { ns / ticks as f64 };
                (t0, at0.as_nanos() as f64, rate)
            }),
        }
    }
}

impl Scale {
    /// Nanoseconds since the clock's origin at `reading`.
    #[inline]
    pub(crate) fn nanos(&self, reading: u64) -> u64 {
        match self.tsc {
            None => reading,
            Some((t0, at0, rate)) => (at0 + reading.saturating_sub(t0) as f64 * rate) as u64,
        }
    }
}

/// A counter value and the time since `origin` read together: the counter is read on both
/// sides of the time, and again if the thread was held up between the two (then the pair
/// would not match, and the rate measured from it would be off).
fn paired(origin: Instant) -> (u64, Duration) {
    /// About 20 µs at the usual counter rates of 1 to 4 GHz.
    const CLOSE: u64 = 50_000;
    let mut best = (u64::MAX, 0, Duration::ZERO);
    for _ in 0..8 {
        let before = rdtsc();
        let at = origin.elapsed();
        let after = rdtsc();
        let spread = after.saturating_sub(before);
        if spread < best.0 {
            best = (spread, before + spread / 2, at);
        }
        if spread < CLOSE {
            break;
        }
    }
    (best.1, best.2)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// True where the kernel keeps time with the time-stamp counter (x86-64 Linux only).
fn tsc_usable() -> bool {
    static USABLE: OnceLock<bool> = OnceLock::new();
    *USABLE.get_or_init(|| {
        cfg!(target_arch = "x86_64")
            && std::env::var_os("ONEBOX_NO_TSC").is_none()
            && std::fs::read_to_string(
                "/sys/devices/system/clocksource/clocksource0/current_clocksource",
            )
            .is_ok_and(|s| s.trim() == "tsc")
    })
}

#[inline]
fn rdtsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC is available on every x86-64 processor and has no side effects.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        0 // never called: `tsc_usable` is false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_convert_to_the_time_instant_measures() {
        let origin = Instant::now();
        std::thread::sleep(Duration::from_millis(2));
        let clock = Clock::new(origin);
        for _ in 0..3 {
            let before = origin.elapsed();
            let reading = clock.now();
            let after = origin.elapsed();
            std::thread::sleep(Duration::from_millis(20));
            let at = Duration::from_nanos(clock.scale().nanos(reading));
            // Within the two Instant readings around it, give or take 500 µs of rate error
            // (a wrong rate would be off by milliseconds).
            let slack = Duration::from_micros(500);
            assert!(
                at + slack >= before && at <= after + slack,
                "{before:?} <= {at:?} <= {after:?}"
            );
        }
        let (a, b) = (clock.now(), clock.now());
        let s = clock.scale();
        assert!(s.nanos(a) <= s.nanos(b));
    }
}
