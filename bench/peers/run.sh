#!/usr/bin/env bash
# onebox and its peers (Dask, multiprocessing, ...) on the same workloads, in one run.
#
#   bench/peers/run.sh                 # every workload; writes BENCHMARKS.md
#   bench/peers/run.sh --quick         # small sizes, a smoke run (BENCHMARKS.md untouched)
#   bench/peers/run.sh --only W1,W2    # some workloads (add --write to update BENCHMARKS.md)
#
# Other options go to harness.py (--reps N, --timeout S, --no-write; see its --help).
# It makes bench/peers/.venv with the pinned peers if missing, installs GNU parallel with apt
# if missing, builds onebox's benchmark program in release mode, then runs harness.py.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="$HERE/.venv"
PYTHON="${PYTHON:-python3}"

log() { printf '[peers] %s\n' "$*" >&2; }

# --help and --list need none of the set-up below.
for a in "$@"; do
    case "$a" in -h|--help|--list)
        [ -x "$VENV/bin/python" ] && PYTHON="$VENV/bin/python"
        exec "$PYTHON" "$HERE/harness.py" "$@" ;;
    esac
done

# 1. The peers, pinned (requirements.txt), in a virtualenv of their own. Without them the run
#    goes on: the peers' rows come out as failed and onebox's are still measured.
PEER_PYTHON="$VENV/bin/python"
if [ ! -x "$PEER_PYTHON" ]; then
    log "creating $VENV"
    if ! "$PYTHON" -m venv "$VENV"; then
        log "could not create $VENV: the peers' rows will fail"
        PEER_PYTHON="$PYTHON"
    fi
fi
if [ "$PEER_PYTHON" != "$PYTHON" ] && ! "$PEER_PYTHON" - "$HERE/requirements.txt" <<'PY'
import sys
from importlib.metadata import version, PackageNotFoundError
bad = []
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if "==" in line:
        name, want = line.split("==")
        name = name.split("[")[0]
        try:
            have = version(name)
        except PackageNotFoundError:
            have = None
        if have != want:
            bad.append(f"{name} {have} (want {want})")
if bad:
    print("[peers] not at the pinned versions: " + ", ".join(bad), file=sys.stderr)
    sys.exit(1)
PY
then
    log "installing the pinned peers into $VENV (a few minutes the first time)"
    "$PEER_PYTHON" -m pip install --quiet --disable-pip-version-check -r "$HERE/requirements.txt" \
        || log "pip could not install every peer: their rows will fail"
fi

# 2. GNU parallel (a peer of the command-job workloads).
if ! command -v parallel >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        log "installing GNU parallel with apt"
        apt-get update -qq >/dev/null && apt-get install -y -qq parallel >/dev/null \
            || log "could not install GNU parallel; its rows will fail"
    else
        log "GNU parallel is missing (apt-get install -y parallel); its rows will fail"
    fi
fi

# 2b. PyTorch on the CPU (W9's peer): Debian's python3-torch, for the system's python3.
if ! /usr/bin/python3 -c "import torch" >/dev/null 2>&1 && ! "$PEER_PYTHON" -c "import torch" >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        log "installing PyTorch (Debian's python3-torch, CPU only) with apt"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-torch >/dev/null \
            || log "could not install python3-torch; W9's PyTorch rows will fail"
    else
        log "PyTorch is missing (apt-get install -y python3-torch); W9's PyTorch rows will fail"
    fi
fi

# 3. onebox's side, in release mode.
#    Dataframes (W5) need the `frame` feature, whose polars takes about half an hour to build
#    in release the first time: a run whose --only leaves W5 out builds without it.
FEATURES=()
prev=""
for a in "$@"; do
    if [ "$prev" = "--only" ]; then
        case "${a^^}" in *W5*) ;; *) FEATURES=(--no-default-features) ;; esac
    fi
    prev="$a"
done
log "building the onebox benchmark program (release${FEATURES:+, without frame})"
# Built for x86-64-v3 (AVX2, FMA, BMI2), as the peers' wheels are (polars' needs AVX2; NumPy
# dispatches at run time): RUSTFLAGS in the environment wins.
export RUSTFLAGS="${RUSTFLAGS:--C target-cpu=x86-64-v3}"
(cd "$ROOT" && cargo build --release --quiet "${FEATURES[@]}" --example peers --bin onebox)
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET" in /*) ;; *) TARGET="$ROOT/$TARGET" ;; esac
BIN="$TARGET/release/examples/peers"
[ -x "$BIN" ] || { log "built program not found at $BIN"; exit 1; }

# 4. Both sides, back to back, then the report.
exec "$PEER_PYTHON" "$HERE/harness.py" --onebox-bin "$BIN" "$@"
