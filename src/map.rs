//! `multiprocessing.Pool` on threads: [`Cluster::map`], [`Cluster::imap_unordered`] and
//! [`Cluster::starmap`].
//!
//! Items are grouped into chunks, a few per pool thread (like `Pool.map`'s default
//! `chunksize`), and each chunk is one task of the scheduler: a million tiny items make a
//! handful of tasks, not a million. Results come back in input order, written straight into
//! the output vector by the chunk that computed them.
//!
//! ```
//! use onebox::prelude::*;
//! let cluster = Cluster::builder().threads(2).build()?;
//! let squares = cluster.map(0..1000u64, |x| x * x)?;
//! assert_eq!(squares[999], 998_001);
//! let sums = cluster.starmap(vec![(1, 2), (3, 4)], |a: i32, b: i32| a + b)?;
//! assert_eq!(sums, vec![3, 7]);
//! # Ok::<(), onebox::Error>(())
//! ```
//!
//! `map` blocks until every chunk has ended, which is what lets its closure borrow from the
//! caller (a lookup table, a model) as with `rayon`'s `par_iter`. A panic in the closure
//! becomes an error naming the chunk's task and item range; the pool keeps working.

use std::mem::MaybeUninit;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::Cluster;
use crate::error::{Error, Result, TaskFailure};
use crate::graph::node::{self, Node, Task, TaskContext, lock};
use crate::graph::{Delayed, TaskHandle, as_completed};

/// Chunks per pool thread: enough for balance when items cost unevenly, few enough that the
/// per-task overhead vanishes.
const CHUNKS_PER_THREAD: usize = 4;

/// The chunk ranges for `n` items on `threads` threads.
pub(crate) fn chunk_ranges(n: usize, threads: usize) -> Vec<Range<usize>> {
    let chunks = (threads.max(1) * CHUNKS_PER_THREAD).min(n).max(1);
    let size = n.div_ceil(chunks).max(1);
    (0..n).step_by(size).map(|s| s..(s + size).min(n)).collect()
}

/// A chunk task's closure, borrowing from `map`'s frame for `'a`.
type ChunkBody<'a> =
    Box<dyn FnMut(&TaskContext<'_>) -> std::result::Result<(), TaskFailure> + Send + 'a>;

/// A chunk's progress, so that `map` knows which elements exist after a failure.
const NOT_STARTED: u8 = 0;
const STARTED: u8 = 1;
const FINISHED: u8 = 2;

/// Raw pointers into `map`'s input and output buffers, shared with the chunk tasks.
struct Buffers<T, U> {
    input: *mut T,
    output: *mut MaybeUninit<U>,
}

// SAFETY: each chunk task touches only its own disjoint index range of both buffers, and
// `map` keeps the buffers alive until every chunk task has ended. T and U values cross
// threads, hence the `Send` bounds.
unsafe impl<T: Send, U: Send> Send for Buffers<T, U> {}
unsafe impl<T: Send, U: Send> Sync for Buffers<T, U> {}

/// Drops what a chunk owns if its closure panics: the outputs written so far and the inputs
/// not yet consumed.
struct ChunkGuard<'a, T, U> {
    buffers: &'a Buffers<T, U>,
    range: Range<usize>,
    next: usize,
}

impl<T, U> Drop for ChunkGuard<'_, T, U> {
    fn drop(&mut self) {
        // SAFETY: outputs in `range.start..next` were written by this chunk and not yet
        // handed out; inputs in `next + 1..range.end` were not read (item `next` was moved into
        // the closure that panicked, which dropped it while unwinding).
        unsafe {
            for i in self.range.start..self.next {
                (*self.buffers.output.add(i)).assume_init_drop();
            }
            for i in (self.next + 1)..self.range.end {
                std::ptr::drop_in_place(self.buffers.input.add(i));
            }
        }
    }
}

impl Cluster {
    /// Applies `f` to every item on the pool and returns the results in input order, like
    /// `multiprocessing.Pool.map`. Items are grouped into a few tasks per thread.
    ///
    /// On failure, the first failing chunk's error is returned (naming its item range) and
    /// every item and result is dropped; nothing leaks.
    pub fn map<I, T, U, F>(&self, items: I, f: F) -> Result<Vec<U>>
    where
        I: IntoIterator<Item = T>,
        T: Send,
        U: Send,
        F: Fn(T) -> U + Sync,
    {
        let mut input: Vec<T> = items.into_iter().collect();
        let n = input.len();
        let mut output: Vec<U> = Vec::with_capacity(n);
        let buffers = Buffers {
            input: input.as_mut_ptr(),
            output: output.spare_capacity_mut().as_mut_ptr(),
        };
        // SAFETY: the elements now belong to the chunk tasks (or to the cleanup below);
        // `input` only keeps the allocation alive.
        unsafe { input.set_len(0) };

        let ranges = chunk_ranges(n, self.threads());
        let states: Vec<AtomicU8> = ranges.iter().map(|_| AtomicU8::new(NOT_STARTED)).collect();
        let mut tasks: Vec<Arc<dyn Task>> = Vec::with_capacity(ranges.len());
        for (c, range) in ranges.iter().enumerate() {
            let (range, state, buffers, f) = (range.clone(), &states[c], &buffers, &f);
            let body = move |_: &TaskContext<'_>| -> std::result::Result<(), TaskFailure> {
                if state.swap(STARTED, Ordering::AcqRel) != NOT_STARTED {
                    return Err(TaskFailure::Error(Arc::new(Error::Invalid(
                        "map chunk ran twice".into(),
                    ))));
                }
                let mut guard = ChunkGuard {
                    buffers,
                    range: range.clone(),
                    next: range.start,
                };
                while guard.next < range.end {
                    let i = guard.next;
                    // SAFETY: index `i` is in this chunk's range; it is read exactly once.
                    unsafe {
                        let item = std::ptr::read(buffers.input.add(i));
                        (*buffers.output.add(i)).write(f(item));
                    }
                    guard.next += 1;
                }
                std::mem::forget(guard);
                state.store(FINISHED, Ordering::Release);
                Ok(())
            };
            let body: ChunkBody<'_> = Box::new(body);
            // SAFETY: the closure borrows `states`, `buffers` and `f` from this stack frame.
            // This function does not return before every chunk task has ended (the wait loop
            // below waits for all of them, failed or not), and a task drops its closure before
            // it is marked ended, so no borrow outlives the frame.
            let body: ChunkBody<'static> =
                unsafe { std::mem::transmute::<ChunkBody<'_>, ChunkBody<'static>>(body) };
            let task = Node::new(self.inner(), Vec::new(), body);
            task.core()
                .set_label(&format!("map[{}..{}]", ranges[c].start, ranges[c].end));
            tasks.push(task);
        }
        // Progress bars, when on (see `diagnostics::progress`), from before the chunks start.
        let progress = crate::diagnostics::progress::for_compute(self.inner());
        // Start every chunk before waiting for any, so that they run in parallel.
        for t in &tasks {
            node::submit(t.clone(), None);
        }
        let waits: Vec<_> = tasks.iter().map(|t| node::wait_for(t.clone())).collect();
        drop(tasks);
        drop(progress);

        let first_error = waits.into_iter().find_map(|r| r.err());
        match first_error {
            None => {
                // SAFETY: every chunk finished, so all `n` outputs are initialised.
                unsafe { output.set_len(n) };
                Ok(output)
            }
            Some(e) => {
                for (c, range) in ranges.iter().enumerate() {
                    match states[c].load(Ordering::Acquire) {
                        // SAFETY: a finished chunk wrote its whole range of outputs.
                        FINISHED => unsafe {
                            for i in range.clone() {
                                (*buffers.output.add(i)).assume_init_drop();
                            }
                        },
                        // SAFETY: a chunk that never started still owns its inputs.
                        NOT_STARTED => unsafe {
                            for i in range.clone() {
                                std::ptr::drop_in_place(buffers.input.add(i));
                            }
                        },
                        _ => {} // the chunk's guard cleaned up after its panic
                    }
                }
                Err(Error::Task((*e).clone()))
            }
        }
    }

    /// Applies `f` to tuples of arguments, like `Pool.starmap`: `f` takes the tuple's fields
    /// as separate arguments (tuples of 1 to 4 fields).
    pub fn starmap<I, A, F>(&self, items: I, f: F) -> Result<Vec<F::Output>>
    where
        I: IntoIterator<Item = A>,
        A: Send,
        F: StarFn<A> + Sync,
        F::Output: Send,
    {
        self.map(items, |args| f.call_star(args))
    }

    /// Applies `f` to every item and yields results as chunks finish, in no particular order,
    /// like `Pool.imap_unordered`. Each item is `Ok(result)`, or the error of its chunk.
    pub fn imap_unordered<I, T, U, F>(
        &self,
        items: I,
        f: F,
    ) -> impl Iterator<Item = Result<U>> + use<I, T, U, F>
    where
        I: IntoIterator<Item = T>,
        T: Send + 'static,
        U: Send + 'static,
        F: Fn(T) -> U + Send + Sync + 'static,
    {
        let items: Vec<T> = items.into_iter().collect();
        let ranges = chunk_ranges(items.len(), self.threads());
        let f = Arc::new(f);
        let mut items = items.into_iter();
        let mut slots = Vec::with_capacity(ranges.len());
        let mut handles: Vec<TaskHandle<()>> = Vec::with_capacity(ranges.len());
        for range in ranges {
            let mut chunk: Option<Vec<T>> = Some(items.by_ref().take(range.len()).collect());
            let slot = Arc::new(std::sync::Mutex::new(Vec::new()));
            let (out, f) = (slot.clone(), f.clone());
            let node = Node::new(self.inner(), Vec::new(), move |_| {
                let chunk = chunk.take().unwrap_or_default();
                *lock(&out) = chunk.into_iter().map(|x| f(x)).collect::<Vec<U>>();
                Ok(())
            });
            let d =
                Delayed::from_node(node).label(&format!("imap[{}..{}]", range.start, range.end));
            handles.push(d.submit());
            slots.push(slot);
        }
        as_completed(handles).flat_map(move |(c, r)| -> Box<dyn Iterator<Item = Result<U>>> {
            match r {
                Ok(()) => Box::new(std::mem::take(&mut *lock(&slots[c])).into_iter().map(Ok)),
                Err(e) => Box::new(std::iter::once(Err(e))),
            }
        })
    }
}

/// A function that takes a tuple's fields as its arguments (see [`Cluster::starmap`]).
pub trait StarFn<Args> {
    /// What the function returns.
    type Output;
    /// Calls the function with the tuple spread into arguments.
    fn call_star(&self, args: Args) -> Self::Output;
}

macro_rules! star_fn {
    ($($a:ident),+) => {
        impl<Func, R, $($a),+> StarFn<($($a,)+)> for Func where Func: Fn($($a),+) -> R {
            type Output = R;
            #[allow(non_snake_case)]
            fn call_star(&self, ($($a,)+): ($($a,)+)) -> R { self($($a),+) }
        }
    };
}
star_fn!(A);
star_fn!(A, B);
star_fn!(A, B, C);
star_fn!(A, B, C, D);

#[cfg(test)]
mod tests {
    use super::chunk_ranges;

    #[test]
    fn chunks_cover_every_item_once() {
        for n in [0, 1, 2, 7, 8, 9, 100, 1001] {
            for threads in [1, 2, 3, 16] {
                let r = chunk_ranges(n, threads);
                let covered: Vec<usize> = r.iter().flat_map(|r| r.clone()).collect();
                assert_eq!(
                    covered,
                    (0..n).collect::<Vec<_>>(),
                    "n={n} threads={threads}"
                );
                assert!(r.len() <= (threads * 4).max(1));
            }
        }
    }
}
