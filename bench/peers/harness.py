"""Runs onebox and its peers on the same workloads in one run, and reports them side by side.

`run.sh` sets up the peers and builds the onebox program, then calls this.  For each case of
each workload's plan (`w*.py` modules, listed in WORKLOADS) the harness runs onebox's
command and the peers' commands back to back, each as a child process with a timeout, reads
their JSON lines (one per repetition, see `_peer.py`), and reports per run the median and
range of the timed repetitions, the figure per task or item, and the ratio to onebox.  A run
that fails or times out becomes a "failed" row; the others go on.

Results: a JSON file in `out/` (every repetition, the machine, the load) and a markdown
table, written into BENCHMARKS.md between `<!-- peers:begin -->` and `<!-- peers:end -->`
for a full run (or with --write).

Standard library only, so that it runs (and its tests run) without the virtualenv.
"""
import argparse
import importlib
import json
import math
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from _plan import Ctx  # noqa: E402

# The workload modules, in report order. A new workload: add its module here (and its
# onebox side to WORKLOADS in onebox_bench.rs).
WORKLOADS = ["w1_scheduler", "w1d_pool_map", "w2_startup", "w3_wordcount", "w4_arrays", "w5_frames", "w5j_joins", "w6_jobs", "w9_train"]

BEGIN, END = "<!-- peers:begin -->", "<!-- peers:end -->"


# ----------------------------------------------------------------------------- machine

def _cmd(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def os_name():
    """"Debian GNU/Linux 12 (bookworm), Linux 6.1" or what can be told."""
    name = platform.system()
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    name = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return f"{name}, kernel {platform.release()}"


def machine():
    """CPU model, cores, memory and OS, read from lscpu, nproc and free at run time."""
    info = {"cpu_model": "?", "cpus": os.cpu_count(), "threads_per_core": None,
            "memory_bytes": None, "os": os_name(), "python": platform.python_version()}
    for line in _cmd(["lscpu"]).splitlines():
        key, _, value = line.partition(":")
        value = value.strip()
        if key.strip() == "Model name":
            info["cpu_model"] = value
        elif key.strip() == "Thread(s) per core":
            info["threads_per_core"] = value
    nproc = _cmd(["nproc"]).strip()
    if nproc.isdigit():
        info["cpus"] = int(nproc)
    for line in _cmd(["free", "-b"]).splitlines():
        if line.startswith("Mem:"):
            info["memory_bytes"] = int(line.split()[1])
    gpus = _cmd(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"]).strip()
    info["gpus"] = [g.strip() for g in gpus.splitlines() if g.strip()]
    return info


def loadavg():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _busy_jiffies():
    """Busy CPU time of the whole machine, in clock ticks (from /proc/stat)."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal ...
    return v[0] + v[1] + v[2] + v[5] + v[6]


def git_rev():
    rev = _cmd(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]).strip() or "?"
    dirty = _cmd(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"]).strip()
    return rev + ("+changes" if dirty else "")


# ----------------------------------------------------------------------------- running

def execute(argv, timeout):
    """Runs one command in its own process group; returns what it printed and how it ended.

    On timeout the whole group is killed (Dask and multiprocessing start children), and the
    lines printed so far are kept.  `foreign_cpu` estimates the share of the machine's CPUs
    that other processes used meanwhile (busy time of the machine minus the command's).
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        busy0, ru0, t0 = _busy_jiffies(), resource.getrusage(resource.RUSAGE_CHILDREN), \
            time.perf_counter()
        timed_out = False
        try:
            p = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                 start_new_session=True, cwd=HERE)
        except OSError as e:
            return {"rc": None, "stdout": "", "stderr": str(e), "timed_out": False,
                    "wall": 0.0, "foreign_cpu": None}
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            rc = p.wait()
        # Children of the command (a Pool, Dask workers) that outlived it.
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            pass
        wall = time.perf_counter() - t0
        busy1, ru1 = _busy_jiffies(), resource.getrusage(resource.RUSAGE_CHILDREN)
        foreign = None
        if busy0 is not None and busy1 is not None and wall > 0:
            hz = os.sysconf("SC_CLK_TCK")
            own = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
            foreign = max(0.0, ((busy1 - busy0) / hz - own) / (wall * (os.cpu_count() or 1)))
        out.seek(0)
        err.seek(0)
        return {"rc": rc, "stdout": out.read(), "stderr": err.read(), "timed_out": timed_out,
                "wall": wall, "foreign_cpu": foreign}


def parse_lines(text):
    """(repetition records, versions) from a command's stdout; other lines are ignored."""
    recs, versions = [], {}
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "versions" in d and isinstance(d["versions"], dict):
            versions.update(d["versions"])
        elif isinstance(d.get("seconds"), (int, float)) and math.isfinite(d["seconds"]):
            recs.append(d)
    return recs, versions


def summarize(run, result):
    """One table row's numbers for a run, from its command's result."""
    recs, versions = parse_lines(result["stdout"])
    if run.select is not None:
        recs = [r for r in recs if r.get("case") == run.select]
    timed = [r for r in recs if not r.get("warmup")]
    row = {"system": run.system, "size": run.size, "onebox": run.onebox, "note": run.note,
           "argv": run.argv, "planned_reps": run.reps, "versions": versions,
           "wall": round(result["wall"], 3), "foreign_cpu": result["foreign_cpu"],
           "rc": result["rc"], "timed_out": result["timed_out"], "reps": recs}
    problem = None
    if result["timed_out"]:
        problem = f"timed out after {result['wall']:.0f} s"
    elif result["rc"] != 0:
        tail = [x for x in result["stderr"].strip().splitlines() if x.strip()]
        problem = f"exit code {result['rc']}" + (f": {tail[-1][:200]}" if tail else "")
    if not timed:
        row["status"] = "failed"
        row["problem"] = problem or "printed no timed repetition"
        return row
    times = [float(r["seconds"]) for r in timed]
    count = timed[0].get("count") or 1
    row.update(status="ok" if problem is None else "partial", problem=problem,
               median=statistics.median(times), min=min(times), max=max(times),
               n=len(times), count=count, unit=timed[0].get("unit"),
               per_unit=statistics.median(times) / count, info=timed[0].get("info") or {})
    phases = {}
    for key in (timed[0].get("phases") or {}):
        vals = [r["phases"][key] for r in timed
                if isinstance((r.get("phases") or {}).get(key), (int, float))]
        if vals:
            phases[key] = statistics.median(vals)
    row["phases"] = phases
    warm = [float(r["seconds"]) for r in recs if r.get("warmup")]
    row["warmup_seconds"] = warm
    return row


def add_ratios(rows):
    """Sets each peer row's ratio: its time per unit over onebox's, at the same size, else
    at the nearest size onebox ran (marked `ratio_size`)."""
    ones = [r for r in rows if r["onebox"] and r["status"] != "failed"]
    for r in rows:
        r["ratio"] = None
        r["ratio_size"] = None
        if r["onebox"] or r["status"] == "failed" or not ones:
            continue
        same = [o for o in ones if o["size"] == r["size"]]
        if same:
            base = same[0]
        else:
            base = min(ones, key=lambda o: abs(math.log(max(o["size"], 1))
                                               - math.log(max(r["size"], 1))))
            r["ratio_size"] = base["size"]
        if base["per_unit"] > 0:
            r["ratio"] = r["per_unit"] / base["per_unit"]
    return rows


def foreign_load(sample=1.0):
    """Share of the machine's CPUs busy over `sample` seconds while this process sleeps."""
    b0 = _busy_jiffies()
    time.sleep(sample)
    b1 = _busy_jiffies()
    if b0 is None or b1 is None:
        return 0.0
    return (b1 - b0) / os.sysconf("SC_CLK_TCK") / (sample * (os.cpu_count() or 1))


def wait_quiet(max_wait, log, threshold=0.15):
    """Waits up to `max_wait` seconds for other processes to leave the CPUs mostly idle."""
    if max_wait <= 0:
        return
    deadline = time.monotonic() + max_wait
    load = foreign_load()
    if load <= threshold:
        return
    log(f"    waiting for a quiet machine (other processes use {load:.0%} of the CPUs)")
    while load > threshold and time.monotonic() < deadline:
        load = foreign_load(2.0)
    if load > threshold:
        log(f"    still {load:.0%} busy after {max_wait:.0f} s: measuring anyway")


def run_plan(cases, log=print, quiet_wait=0.0):
    """Runs every run of every case; a command shared by several runs runs once.
    Before each command, waits up to `quiet_wait` seconds for a quiet machine."""
    done = {}
    out = []
    for case in cases:
        rows = []
        for run in case.runs:
            key = tuple(run.argv)
            shown = " ".join(os.path.basename(a) if i < 2 else a for i, a in enumerate(run.argv))
            log(f"[{case.workload}] {run.system}, size {run.size:,}: {shown}"
                + (" (ran above)" if key in done else ""))
            if key not in done:
                wait_quiet(quiet_wait, log)
                done[key] = execute(run.argv, run.timeout)
            row = summarize(run, done[key])
            rows.append(row)
            if row["status"] == "failed":
                log(f"    FAILED: {row['problem']}")
            else:
                log(f"    median {fmt_time(row['median'])} "
                    f"({fmt_time(row['min'])}-{fmt_time(row['max'])}, n={row['n']}), "
                    f"{fmt_per_unit(row['per_unit'], row['unit'])}"
                    + (f" [{row['problem']}]" if row["problem"] else ""))
        add_ratios(rows)
        out.append({"workload": case.workload, "title": case.title, "unit": case.unit,
                    "rows": rows})
    return out


# ----------------------------------------------------------------------------- report

def _sig(x, digits=3):
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    places = max(0, digits - 1 - int(math.floor(math.log10(abs(x)))))
    return f"{x:,.{places}f}"


def fmt_time(s):
    if s is None:
        return "-"
    if s < 1e-3:
        return f"{_sig(s * 1e6)} µs"
    if s < 1:
        return f"{_sig(s * 1e3)} ms"
    return f"{_sig(s)} s"


def fmt_per_unit(s, unit):
    if s is None:
        return "-"
    if unit == "cluster":
        return fmt_time(s)
    if unit == "MB":
        return f"{_sig(1 / s)} MB/s" if s > 0 else "-"
    if s < 1e-6:
        return f"{_sig(s * 1e9)} ns/{unit or 'unit'}"
    return f"{_sig(s * 1e6)} µs/{unit or 'unit'}"


def fmt_ratio(x):
    if x is None:
        return "-"
    if x >= 100:
        return f"{x:,.0f}×"
    if x >= 10:
        return f"{x:.1f}×"
    return f"{x:.2f}×"


def _notes(row):
    parts = [row["note"]] if row["note"] else []
    if row["status"] == "failed":
        return "; ".join(["**failed**: " + row["problem"]] + parts)
    if row["status"] == "partial":
        parts.append(f"{row['problem']} ({row['n']} of {row['planned_reps']} reps)")
    for k, v in row.get("phases", {}).items():
        if abs(v - row["median"]) > 1e-12 * max(1.0, abs(v)):
            parts.append(f"{k} {fmt_time(v)}")
    if row.get("info"):
        parts.append(", ".join(f"{k} {v}" for k, v in row["info"].items()))
    if row.get("foreign_cpu") is not None and row["foreign_cpu"] >= 0.05:
        parts.append(f"foreign CPU {row['foreign_cpu']:.0%}")
    return "; ".join(p for p in parts if p).replace("|", "/")


def render(report):
    """The markdown block (between the markers) for a report."""
    m = report["machine"]
    mem = m.get("memory_bytes")
    mem_s = f"{mem / 2**30:.1f} GiB" if mem else "?"
    gpus = ", ".join(m.get("gpus") or []) or "no GPU"
    vers = ", ".join(f"{k} {v}" for k, v in sorted(report["versions"].items()))
    la0, la1 = report["loadavg_start"], report["loadavg_end"]
    lines = [
        BEGIN,
        "## Peers, side by side",
        "",
        f"Measured {report['started']} to {report['ended']} (UTC) with "
        f"`{report['command']}`, onebox {report['onebox_rev']}"
        + (f" built with `RUSTFLAGS='{report['rustflags']}'`" if report.get("rustflags") else "")
        + ".",
        "",
        f"| machine | CPU | cores | memory | GPU | load avg (1/5/15 min) at start | at end |",
        "|---|---|---|---|---|---|---|",
        f"| {m.get('os', '?')} | {m.get('cpu_model', '?')} | {m.get('cpus', '?')} "
        f"| {mem_s} | {gpus} | {' / '.join(map(str, la0 or []))} "
        f"| {' / '.join(map(str, la1 or []))} |",
        "",
        f"Peers: {vers or '?'}; Python {m.get('python', '?')}. Every system runs on "
        f"{report['threads']} threads (or processes); each figure is the median of the timed "
        "repetitions (n) after an untimed warm-up. **peer/onebox** is the peer's time per "
        "unit over onebox's at the same size (above 1: onebox is faster); a † marks a peer "
        "that ran shrunk, compared per unit with onebox at the size in brackets. Absolute "
        "times drift ±20% between runs on this machine: compare the ratios.",
        "",
        "| workload | system | size | median (n) | min-max | per unit | peer/onebox | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for case in report["cases"]:
        first = True
        for r in case["rows"]:
            wl = f"**{case['workload']}** {case['title']}" if first else ""
            first = False
            if r["status"] == "failed":
                lines.append(f"| {wl} | {r['system']} | {r['size']:,} | failed | - | - | - "
                             f"| {_notes(r)} |")
                continue
            ratio = "" if r["onebox"] else fmt_ratio(r["ratio"])
            if r["ratio_size"] is not None and r["ratio"] is not None:
                ratio += f" † ({r['ratio_size']:,})"
            system = f"**{r['system']}**" if r["onebox"] else r["system"]
            lines.append(
                f"| {wl} | {system} | {r['size']:,} | {fmt_time(r['median'])} ({r['n']}) "
                f"| {fmt_time(r['min'])}-{fmt_time(r['max'])} "
                f"| {fmt_per_unit(r['per_unit'], r['unit'])} | {ratio} | {_notes(r)} |")
    lines += ["", "See `bench/peers/README.md` for what each workload does and the caveats.",
              END]
    return "\n".join(lines)


def machine_line(m):
    """"AMD EPYC, 2 cores, 23.5 GiB, no GPU (Debian ...)" for a `machine()` dict."""
    mem = m.get("memory_bytes")
    mem_s = f"{mem / 2**30:.1f} GiB" if mem else "? GiB"
    gpus = ", ".join(m.get("gpus") or []) or "no GPU"
    return f"{m.get('cpu_model', '?')}, {m.get('cpus', '?')} cores, {mem_s}, {gpus} " \
           f"({m.get('os', '?')})"


def write_benchmarks(path, block, machine_text="?"):
    """Puts the block between the markers of BENCHMARKS.md (made if missing, with a header
    naming the machine)."""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            text = f.read()
    else:
        text = (f"# Benchmarks\n\nMeasured on {machine_text}, by the scripts named in each "
                "section. Compare ratios measured in one run, not absolute times across "
                "runs.\n\n")
    b, e = text.find(BEGIN), text.find(END)
    if b >= 0 and e > b:
        text = text[:b] + block + text[e + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


# ----------------------------------------------------------------------------- main

def select_cases(cases, only):
    if not only:
        return cases
    wanted = [w.strip().lower() for w in only.split(",") if w.strip()]
    return [c for c in cases if any(c.workload.lower().startswith(w) for w in wanted)]


def shown_args(argv):
    """The options a person gave run.sh: argv less the --onebox-bin that run.sh adds."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--onebox-bin":
            skip = True
        elif not a.startswith("--onebox-bin="):
            out.append(a)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description="onebox against its peers, in one run")
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    p.add_argument("--onebox-bin", help="the built `peers` example (default: "
                   "$CARGO_TARGET_DIR/release/examples/peers)",
                   default=os.path.join(ROOT, target, "release", "examples", "peers"))
    p.add_argument("--list", action="store_true", help="print the plan's commands; run nothing")
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    p.add_argument("--only", default="", help="workloads to run, e.g. W1,W2 or W1a,W1d")
    p.add_argument("--reps", type=int, default=None, help="repetitions for every run")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds before a run is stopped (default 300, --quick 120)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quiet-wait", type=float, default=0.0,
                   help="before each run, wait up to this many seconds for other processes "
                        "to leave the CPUs idle (below 15%%)")
    p.add_argument("--out-dir", default=os.path.join(HERE, "out"))
    p.add_argument("--benchmarks", default=os.path.join(ROOT, "BENCHMARKS.md"))
    p.add_argument("--write", action="store_true",
                   help="write BENCHMARKS.md even for --quick/--only runs")
    p.add_argument("--no-write", action="store_true", help="never write BENCHMARKS.md")
    args = p.parse_args(argv)

    timeout = args.timeout or (120.0 if args.quick else 300.0)
    ctx = Ctx(os.path.abspath(args.onebox_bin), sys.executable, quick=args.quick,
              timeout=timeout, reps=args.reps, threads=args.threads)
    cases = []
    for name in WORKLOADS:
        cases += importlib.import_module(name).plan(ctx)
    cases = select_cases(cases, args.only)
    if not cases:
        print(f"no workload matches --only {args.only!r}", file=sys.stderr)
        return 2
    if args.list:
        for case in cases:
            print(f"{case.workload}: {case.title}")
            for r in case.runs:
                print(f"    {r.system} (size {r.size:,}, timeout {r.timeout:.0f} s): "
                      + " ".join(r.argv))
        return 0

    command = " ".join(["bench/peers/run.sh"] + shown_args(sys.argv[1:] if argv is None
                                                          else argv))
    report = {"started": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
              "machine": machine(), "loadavg_start": loadavg(), "onebox_rev": git_rev(),
              "rustflags": os.environ.get("RUSTFLAGS", ""),
              "threads": args.threads, "quick": args.quick, "command": command}
    report["cases"] = run_plan(cases, log=lambda s: print(s, file=sys.stderr, flush=True),
                               quiet_wait=args.quiet_wait)
    report["ended"] = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    report["loadavg_end"] = loadavg()
    versions = {}
    for case in report["cases"]:
        for r in case["rows"]:
            versions.update(r["versions"])
    report["versions"] = versions

    os.makedirs(args.out_dir, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    path = os.path.join(args.out_dir, f"peers-{stamp}{'-quick' if args.quick else ''}.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1, default=str)
    shutil.copyfile(path, os.path.join(args.out_dir, "latest.json"))
    block = render(report)
    print(block)
    full = not args.quick and not args.only
    if not args.no_write and (full or args.write):
        write_benchmarks(args.benchmarks, block, machine_line(report["machine"]))
        print(f"\nwrote {args.benchmarks}; raw results in {path}", file=sys.stderr)
    elif args.no_write:
        print(f"\nraw results in {path} (BENCHMARKS.md left as it was: --no-write)",
              file=sys.stderr)
    else:
        print(f"\nraw results in {path} (BENCHMARKS.md left as it was: a --quick or --only "
              "run writes it only with --write)", file=sys.stderr)
    failed = [r for c in report["cases"] for r in c["rows"] if r["status"] == "failed"]
    if failed:
        print(f"{len(failed)} run(s) failed: see the table", file=sys.stderr)
    # A failing peer is a row of the table; a failing onebox run is a bug to look at.
    return 1 if any(r["onebox"] for r in failed) else 0


if __name__ == "__main__":
    sys.exit(main())
