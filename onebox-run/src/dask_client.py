"""onebox's Dask client: runs a batch's tasks on a Dask scheduler.

onebox starts this with `python -c`, writes the batch as JSON on stdin, and reads one JSON
line per finished task on stdout. Each task runs on a worker as a child process in its own
session, writing its stdout, stderr and status files itself (the same layout as onebox's
local and Slurm executors), so the results directory must be on a filesystem the workers share.
SIGTERM or SIGINT stops the batch: running tasks' process groups are killed and their status
becomes `interrupted`.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone

try:
    from distributed import Client, Event, as_completed
except ImportError:
    sys.stderr.write(
        "onebox: the Dask executor needs the `distributed` package for %s "
        "(pip install distributed)\n" % sys.executable
    )
    sys.exit(3)


def stamp(t):
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def keep_earlier_output(d):
    """Moves an earlier attempt's stdout and stderr (a retry, or an earlier run that --resume
    finishes) to stdout.attemptN and stderr.attemptN, N the first number neither uses."""
    streams = ("stdout", "stderr")
    if not any(os.path.exists(os.path.join(d, s)) for s in streams):
        return
    n = 1
    while any(os.path.exists(os.path.join(d, "%s.attempt%d" % (s, n))) for s in streams):
        n += 1
    for s in streams:
        try:
            os.replace(os.path.join(d, s), os.path.join(d, "%s.attempt%d" % (s, n)))
        except FileNotFoundError:
            pass


def kill_group(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_task(spec, stop_name):
    """Runs one task on a worker; returns its record."""
    stop = Event(stop_name)
    if stop.is_set():
        return {"pos": spec["pos"], "status": None}  # not started: stays pending
    d = spec["dir"]
    os.makedirs(os.path.join(d, "results"), exist_ok=True)
    try:
        os.remove(os.path.join(d, "status"))
    except FileNotFoundError:
        pass
    env = dict(os.environ)
    env.update(spec["env"])
    attempts, code, timed_out, status = 0, 0, False, None
    start = end = time.time()
    while True:
        attempts += 1
        keep_earlier_output(d)
        start = time.time()
        timed_out = False
        with open(os.path.join(d, "stdout"), "wb") as out, open(os.path.join(d, "stderr"), "wb") as err:
            try:
                p = subprocess.Popen(
                    spec["argv"], stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                    cwd=spec.get("workdir"), start_new_session=True,
                )
            except OSError as e:
                err.write(("onebox: cannot start %r: %s\n" % (spec["argv"][0], e)).encode())
                code = 126 if isinstance(e, PermissionError) else 127
            else:
                deadline = start + spec["timeout"] if spec.get("timeout") else None
                while True:
                    try:
                        code = p.wait(timeout=0.5)
                        break
                    except subprocess.TimeoutExpired:
                        pass
                    if deadline is not None and time.time() >= deadline:
                        kill_group(p.pid)
                        p.wait()
                        code, timed_out = 124, True
                        break
                    if stop.is_set():
                        kill_group(p.pid)
                        p.wait()
                        status = "interrupted"
                        break
                kill_group(p.pid)
                if code is not None and code < 0:
                    code = 128 - code
        end = time.time()
        if status == "interrupted" or code == 0 or attempts > spec["retries"]:
            break
        if stop.is_set():
            status = "interrupted"
            break
    if status is None:
        status = str(code)
    write_atomic(os.path.join(d, "status"), status + "\n")
    return {
        "pos": spec["pos"],
        "status": status,
        "attempts": attempts,
        "start": stamp(start),
        "end": stamp(end),
        "duration_s": round(end - start, 6),
        "host": socket.gethostname(),
        "timed_out": timed_out,
    }


def main():
    batch = json.load(sys.stdin)
    client = Client(batch["scheduler_address"], timeout="20s")
    tasks = batch["tasks"]
    if any(t.get("gpus") for t in tasks):
        workers = client.scheduler_info().get("workers", {}).values()
        if not any(w.get("resources", {}).get("GPU", 0) > 0 for w in workers):
            sys.stderr.write(
                "onebox: tasks ask for GPUs, but no Dask worker offers the resource GPU "
                "(start workers with --resources GPU=N)\n"
            )
            sys.exit(3)
    stop_name = "onebox-stop-" + uuid.uuid4().hex
    stop = Event(stop_name, client=client)
    stopping = []

    def on_signal(signum, frame):
        stopping.append(signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    futures = []
    for t in tasks:
        kwargs = {"key": "onebox-%s-%s" % (t["name"], uuid.uuid4().hex), "pure": False}
        if t.get("gpus"):
            kwargs["resources"] = {"GPU": t["gpus"]}
        futures.append(client.submit(run_task, t, stop_name, **kwargs))
    by_key = {f.key: t for f, t in zip(futures, tasks)}
    for f in as_completed(futures):
        t = by_key[f.key]
        try:
            record = f.result()
        except Exception as e:  # the worker died or the function failed outside the task
            record = {"pos": t["pos"], "status": "lost", "attempts": 0, "error": repr(e)}
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()
    client.close()


main()
