"""W9: data-parallel training, onebox's trainer against the same MLP in PyTorch on the CPU at
the same thread count.

Cases (`python w9_train.py CASE SIZE`; SIZE is the hidden layer's width):
  torch_mlp   64 inputs -> SIZE ReLU units -> 10 classes on the digits (data/digits.csv.gz),
              batches of 256, AdamW (weight decay 1e-4) with a cosine schedule from 1e-2 to
              1e-5, 10 epochs over the 80% training split; torch.set_num_threads(THREADS)

The same model, batch, optimizer, schedule and epochs as onebox's side (`onebox_w9.rs`, which
runs `examples/train_mlp.rs`). Only the training loop is timed (data loaded and converted to
tensors before). Every repetition checks the held-out accuracy (at least 0.90) so that a model
that learnt nothing cannot pass for a fast one.

PyTorch comes from Debian's `python3-torch` (CPU only, for the system's python3) or from the
virtualenv if it has one: `plan` picks a Python that can import torch.
"""
import gzip
import math
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _peer  # noqa: E402
from _plan import Case  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DIGITS = os.path.join(ROOT, "data", "digits.csv.gz")
BATCH = 256
EPOCHS = 10
MIN_ACCURACY = 0.90
SIZES = (64, 512)


def load_digits():
    """(features, labels): 1797 rows of 64 pixels scaled to 0..1, and the digit."""
    xs, ys = [], []
    with gzip.open(DIGITS, "rt") as f:
        for line in f:
            if line.strip():
                v = line.split(",")
                xs.append([float(p) / 16.0 for p in v[:-1]])
                ys.append(int(v[-1]))
    return xs, ys


def cosine_lr(epoch, lr=1e-2, min_lr=1e-5, epochs=EPOCHS):
    """The learning rate of `epoch`, as onebox's Schedule::cosine computes it."""
    if epoch >= epochs:
        return min_lr
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))


def case_torch_mlp(hidden, threads):
    import torch

    torch.set_num_threads(threads)
    xs, ys = load_digits()
    x = torch.tensor(xs, dtype=torch.float32)
    y = torch.tensor(ys, dtype=torch.long)
    g = torch.Generator().manual_seed(42)
    order = torch.randperm(len(xs), generator=g)
    n_test = round(len(xs) * 0.2)
    test, train = order[:n_test], order[n_test:]
    x_train, y_train, x_test, y_test = x[train], y[train], x[test], y[test]

    torch.manual_seed(7)
    model = torch.nn.Sequential(torch.nn.Linear(64, hidden), torch.nn.ReLU(),
                                torch.nn.Linear(hidden, 10))
    opt = torch.optim.AdamW(model.parameters(), lr=cosine_lr(0), weight_decay=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    n = len(train)
    steps = 0
    t0 = time.perf_counter()
    for epoch in range(EPOCHS):
        for group in opt.param_groups:
            group["lr"] = cosine_lr(epoch)
        perm = torch.randperm(n, generator=g)
        for start in range(0, n, BATCH):
            idx = perm[start:start + BATCH]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x_train[idx]), y_train[idx])
            loss.backward()
            opt.step()
            steps += 1
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    _peer.check(accuracy >= MIN_ACCURACY,
                f"torch_mlp: held-out accuracy {accuracy:.3f} below {MIN_ACCURACY}")
    return dict(system=f"PyTorch {torch.__version__} CPU", count=n * EPOCHS, unit="sample",
                seconds=seconds, phases={"fit": seconds, "step": seconds / max(steps, 1)},
                info={"accuracy": accuracy, "steps": steps, "threads": threads,
                      "batch": BATCH})


CASES = {"torch_mlp": case_torch_mlp}


def torch_python(default):
    """A Python that can import torch: the peers' own first, then the system's."""
    for python in (default, "/usr/bin/python3"):
        try:
            ok = subprocess.run([python, "-c", "import torch"], capture_output=True,
                                timeout=60).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        if ok:
            return python
    return default


def _with_threads(run, threads):
    """The same run on `threads` threads instead of the harness's."""
    i = run.argv.index("--threads")
    run.argv[i + 1] = str(threads)
    return run


def plan(ctx):
    me = "w9_train.py"
    python = torch_python(ctx.python)
    # (hidden units, threads): both sizes at the harness's thread count, and the larger one
    # on one thread too, for the scaling from 1 to THREADS replicas.
    shapes = [(h, ctx.threads) for h in (SIZES[:1] if ctx.quick else SIZES)]
    if ctx.threads > 1:
        shapes.append((SIZES[-1], 1))
    cases = []
    for hidden, threads in shapes:
        title = f"MLP 64-{hidden}-10 on the digits, batch {BATCH}, {EPOCHS} epochs, AdamW"
        if threads != ctx.threads:
            title += f", {threads} thread{'s' if threads > 1 else ''} on both sides"
        case = Case("W9", title, "sample")
        case.runs.append(_with_threads(
            ctx.onebox("W9", hidden, f"onebox Trainer, {threads} replica(s)",
                       note="micro-shards of 32"), threads))
        run = ctx.peer(me, "torch_mlp", hidden, f"PyTorch CPU, {threads} thread(s)", reps=5)
        run.argv[0] = python
        case.runs.append(_with_threads(run, threads))
        cases.append(case)
    return cases


if __name__ == "__main__":
    _peer.run_case("W9", CASES, modules=("torch",))
