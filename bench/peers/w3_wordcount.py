"""W3: word count (the 20 most frequent words) over a generated corpus of 16 text files.

Cases (peer side; `python w3_wordcount.py CASE SIZE`, SIZE the corpus in MB):
  dask_processes  dask.bag.read_text(...).str.split().flatten().frequencies().topk(20, key=1)
                  on the bag's default scheduler (processes)
  dask_threads    the same with scheduler='threads'
  counter         a single-thread Python collections.Counter, line by line
  read            this machine's sequential read speed of the same files: one thread
                  reading them into a buffer from the page cache (no parsing)

The onebox side (`onebox_w3.rs`) runs the bag (read_text, words, frequencies, top_k) and a
hand-written rayon program doing the same work; it gets the corpus through

  python w3_wordcount.py with-corpus SIZE -- COMMAND...

which makes the corpus if it is missing, then runs COMMAND with $ONEBOX_W3_CORPUS set.

The corpus is deterministic (fixed seeds): 16 files of lines of 8 to 16 words drawn by a
Zipf law (s = 1) from a vocabulary of 50,000 made-up lowercase words. It is made once in
$ONEBOX_BENCH_CACHE (default: the temporary directory's `onebox-bench-cache`), outside git,
and reused while its MANIFEST.json matches. The manifest holds the exact top 20, counted
from the generator's draws (not by tokenising the text): every system must give exactly
that list, ordered by count then word, or the run fails. All figures are MB/s of corpus
(10^6 bytes); each run first reads the files once so that every system reads from the page
cache.
"""
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _peer  # noqa: E402
from _plan import Case  # noqa: E402

NFILES = 16
VOCAB = 50_000
SEED = 20261126
TOP = 20
FORMAT = 1   # bump when the generator changes: an old corpus is then made again


def corpus_dir(size_mb):
    root = os.environ.get("ONEBOX_BENCH_CACHE") or os.path.join(tempfile.gettempdir(),
                                                                  "onebox-bench-cache")
    return os.path.join(root, f"w3-corpus-{size_mb}mb")


def _vocabulary(rng):
    """VOCAB distinct lowercase words of 2 to 10 letters, in a seeded order."""
    import numpy as np
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    seen, words = set(), []
    while len(words) < VOCAB:
        lens = rng.integers(2, 11, VOCAB)
        chars = rng.integers(0, 26, (VOCAB, 10))
        for n, row in zip(lens.tolist(), chars):
            w = "".join(letters[row[:n]].tolist())
            if w not in seen:
                seen.add(w)
                words.append(w)
                if len(words) == VOCAB:
                    break
    return words


def generate(d, size_mb):
    """Writes the corpus into `d` and returns its manifest."""
    import numpy as np
    os.makedirs(d, exist_ok=True)
    rng0 = np.random.default_rng(SEED)
    vocab = np.array(_vocabulary(rng0), dtype=object)
    p = 1.0 / np.arange(1, VOCAB + 1)
    cdf = np.cumsum(p / p.sum())
    cdf[-1] = 1.0
    target = size_mb * 1_000_000 // NFILES
    counts = np.zeros(VOCAB, dtype=np.int64)
    files = {}
    for i in range(NFILES):
        rng = np.random.default_rng([SEED, i])
        name = f"part-{i:02d}.txt"
        size = 0
        with open(os.path.join(d, name), "wb") as f:
            while size < target:
                lens = rng.integers(8, 17, 20_000)
                idx = np.searchsorted(cdf, rng.random(int(lens.sum())), side="right")
                ws = vocab[idx].tolist()
                ends = np.cumsum(lens).tolist()
                lines, pos, used = [], 0, 0
                for end in ends:
                    line = " ".join(ws[pos:end]) + "\n"
                    if size + len(line) > target and lines:
                        break
                    lines.append(line)
                    size += len(line)
                    pos = used = end
                    if size >= target:
                        break
                np.add.at(counts, idx[:used], 1)
                f.write("".join(lines).encode("ascii"))
                if used < len(idx):   # the file is full
                    break
        files[name] = size
    order = sorted(range(VOCAB), key=lambda r: (-int(counts[r]), vocab[r]))[:TOP]
    manifest = {"format": FORMAT, "seed": SEED, "vocab": VOCAB, "size_mb": size_mb,
                "files": files, "top": [[vocab[r], int(counts[r])] for r in order]}
    with open(os.path.join(d, "MANIFEST.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    return manifest


def ensure_corpus(size_mb):
    """The corpus directory and its manifest, made if missing or stale."""
    d = corpus_dir(size_mb)
    try:
        with open(os.path.join(d, "MANIFEST.json")) as f:
            m = json.load(f)
        ok = m.get("format") == FORMAT and m.get("size_mb") == size_mb and all(
            os.path.getsize(os.path.join(d, n)) == b for n, b in m["files"].items())
        if ok and len(m["files"]) == NFILES:
            return d, m
    except (OSError, ValueError, KeyError):
        pass
    return d, generate(d, size_mb)


def files_of(d):
    return sorted(glob.glob(os.path.join(d, "*.txt")))


def warm(files):
    """Reads the files once (into the page cache); returns their bytes."""
    total = 0
    buf = bytearray(1 << 22)
    for fn in files:
        with open(fn, "rb", buffering=0) as f:
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                total += n
    return total


def ordered(top):
    """[[word, count], ...] ordered by count, then word (ties among equal counts)."""
    return sorted(([str(w), int(n)] for w, n in top), key=lambda p: (-p[1], p[0]))


def _timed_count(size_mb, system, fn, info=None):
    d, m = ensure_corpus(size_mb)
    files = files_of(d)
    total = warm(files)
    t0 = time.perf_counter()
    top = fn(d, files)
    seconds = time.perf_counter() - t0
    _peer.check(ordered(top) == m["top"],
                f"{system}: top {TOP} differs from the corpus's: {ordered(top)[:3]} ...")
    mb = total / 1e6
    return dict(system=system, count=round(mb), unit="MB", seconds=seconds,
                phases={}, info=info or {})


def _dask_top(d, scheduler, threads):
    import dask.bag as db
    b = db.read_text(os.path.join(d, "*.txt")).str.split().flatten().frequencies() \
        .topk(TOP, key=1)
    if scheduler == "processes":
        # The bag's default scheduler; num_workers pins it to the same parallelism.
        return b.compute(num_workers=threads)
    return b.compute(scheduler=scheduler, num_workers=threads)


def case_dask_processes(size_mb, threads):
    return _timed_count(size_mb, "dask.bag (default: processes)",
                        lambda d, _f: _dask_top(d, "processes", threads))


def case_dask_threads(size_mb, threads):
    return _timed_count(size_mb, "dask.bag scheduler='threads'",
                        lambda d, _f: _dask_top(d, "threads", threads))


def _counter(_d, files):
    from collections import Counter
    c = Counter()
    for fn in files:
        with open(fn, encoding="utf-8") as f:
            for line in f:
                c.update(line.split())
    return _top_of(c)


def _top_of(counter):
    """The top TOP of a Counter, ties by word (most_common breaks ties by first seen)."""
    return sorted(counter.items(), key=lambda p: (-p[1], p[0]))[:TOP]


def case_counter(size_mb, threads):
    return _timed_count(size_mb, "Python collections.Counter, 1 thread", _counter)


def case_read(size_mb, threads):
    d, _m = ensure_corpus(size_mb)
    files = files_of(d)
    warm(files)
    t0 = time.perf_counter()
    total = warm(files)
    seconds = time.perf_counter() - t0
    mb = total / 1e6
    return dict(system="sequential read (page cache, 1 thread)", count=round(mb), unit="MB",
                seconds=seconds, phases={}, info={})


CASES = {
    "dask_processes": case_dask_processes,
    "dask_threads": case_dask_threads,
    "counter": case_counter,
    "read": case_read,
}


def with_corpus(argv):
    """`with-corpus SIZE -- COMMAND...`: makes the corpus, then runs COMMAND with
    $ONEBOX_W3_CORPUS naming it (the files read once first, into the page cache)."""
    size_mb = int(argv[0])
    cmd = argv[argv.index("--") + 1:]
    d, _m = ensure_corpus(size_mb)
    warm(files_of(d))
    env = dict(os.environ, ONEBOX_W3_CORPUS=d)
    return subprocess.run(cmd, env=env).returncode


# Commands of this script that are not a measured case (the harness's tests know them).
RUNNERS = {"with-corpus": with_corpus}


def plan(ctx):
    me = "w3_wordcount.py"
    size = 300
    case = Case("W3", f"word count, top {TOP} words of a generated {size} MB corpus of "
                      f"{NFILES} files (MB/s = 10^6 bytes of corpus per second)", "MB")
    for sub, system, reps in (("bag", "onebox Bag: read_text, words, frequencies, top_k", 5),
                              ("rayon", "hand-written rayon program, same work", 5)):
        ob = ctx.onebox("W3", size, system, reps=reps, select=sub)
        ob.argv = [ctx.python, os.path.join(_peer.HERE, me), "with-corpus", str(size), "--"] \
            + ob.argv
        ob.onebox = sub == "bag"
        case.runs.append(ob)
    case.runs.append(ctx.peer(me, "dask_processes", size, "dask.bag (default: processes)",
                              reps=3, timeout=600))
    case.runs.append(ctx.peer(me, "dask_threads", size, "dask.bag scheduler='threads'",
                              reps=3, timeout=600))
    case.runs.append(ctx.peer(me, "counter", size, "Python collections.Counter, 1 thread",
                              reps=3, timeout=600))
    case.runs.append(ctx.peer(me, "read", size, "sequential read (page cache, 1 thread)",
                              reps=5, note="reading only: the ceiling"))
    return [case]


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in RUNNERS:
        sys.exit(RUNNERS[sys.argv[1]](sys.argv[2:]))
    _peer.run_case("W3", CASES, modules=("dask", "numpy"))
