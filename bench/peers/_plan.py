"""The shape of a benchmark plan: cases, and the runs that measure each case on one system.

A workload module (w1_scheduler.py, ...) has a `plan(ctx)` function that returns a list of
`Case`s; `ctx` (a `Ctx`) builds the command lines, so that the module only says what to run
at which size.  Standard library only: the harness and its tests import this without the
virtualenv.
"""
import os
import sys
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))


@dataclass
class Run:
    """One system measured on one case at one size: a command that prints JSON lines.

    Runs with the same command line are run once and share its lines (W2's one command
    measures both the cold and the warm start); `select` picks a run's lines by "case".
    """
    system: str
    argv: list
    size: int
    onebox: bool
    timeout: float
    reps: int
    note: str = ""
    select: str = None    # keep only the JSON lines of this "case" (one command, many cases)


@dataclass
class Case:
    """One thing measured: onebox's runs and its peers' runs, compared in one table block.

    `unit` is what the per-unit figure divides by ("task", "item", "cluster").  Peers are
    compared with the onebox run of the same size, or, where the peer ran shrunk, with the
    onebox run of the nearest size, per unit.
    """
    workload: str
    title: str
    unit: str
    runs: list = field(default_factory=list)


class Ctx:
    """Builds the runs of a plan for one harness invocation."""

    def __init__(self, onebox_bin, python=sys.executable, quick=False, timeout=300.0,
                 reps=None, threads=2):
        self.onebox_bin = onebox_bin
        self.python = python
        self.quick = quick
        self.timeout = timeout
        self.reps = reps          # overrides every run's repetitions when set
        self.threads = threads

    def _reps(self, reps):
        if self.reps is not None:
            return self.reps
        return min(reps, 3) if self.quick else reps

    def onebox(self, workload, size, system, reps=5, warmup=1, timeout=None, note="",
               select=None):
        reps = self._reps(reps)
        argv = [self.onebox_bin, workload, str(size), "--reps", str(reps),
                "--warmup", str(warmup), "--threads", str(self.threads)]
        return Run(system, argv, size, True, timeout or self.timeout, reps, note, select)

    def peer(self, script, case, size, system, reps=3, warmup=1, warmup_size=None,
             timeout=None, note="", select=None):
        reps = self._reps(reps)
        argv = [self.python, os.path.join(HERE, script), case, str(size), "--reps", str(reps),
                "--warmup", str(warmup), "--threads", str(self.threads)]
        if warmup_size is not None:
            argv += ["--warmup-size", str(warmup_size)]
        return Run(system, argv, size, False, timeout or self.timeout, reps, note, select)
