#!/usr/bin/env bash
# Before/after in one run: builds BASE (a git ref, default origin's main or HEAD~1) in a temporary worktree, then runs
# `bench gemm` and `bench train` with the base build and the working tree's build back to back, alternating which
# goes first, and prints the median of the pair ratios (after/before; higher is faster).
#
#   bash benchmarks/ab.sh [BASE_REF] [ROUNDS]      (defaults HEAD~1 and 5; pairs also in out/ab/pairs.tsv)
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${1:-HEAD~1}
ROUNDS=${2:-5}
WT=$(mktemp -d)/base
git worktree add -q --detach "$WT" "$BASE"
trap 'git worktree remove --force "$WT"' EXIT
dotnet build "$WT/src/Backprop.Cli" -c Release -v q >/dev/null
dotnet build src/Backprop.Cli -c Release -v q >/dev/null
OLD="$WT/src/Backprop.Cli/bin/Release/net10.0/backprop"
NEW=src/Backprop.Cli/bin/Release/net10.0/backprop
mkdir -p out/ab
LOG=out/ab/pairs.tsv
: > "$LOG"
num() { grep -o "\"$1\": *[0-9.e+-]*" | head -1 | sed 's/.*: *//'; }
run() { # BIN KIND ARGS...
  local bin=$1 kind=$2; shift 2
  if [[ $kind == gemm ]]; then "$bin" bench gemm "$@" --json | tail -1 | num gflops
  else "$bin" bench train "$@" --json | tail -1 | num samples_per_s; fi
}
CASES=(
  "gemm|--m 1024 --n 1024 --k 1024 --threads 1"
  "gemm|--m 128 --n 512 --k 784 --threads 1"
  "gemm|--m 1024 --n 1024 --k 1024 --threads 2"
  "train|--layers 784,512,512,10 --batch 128 --steps 300 --threads 1"
  "train|--layers 784,128,10 --batch 32 --steps 4000 --threads 1"
  "train|--layers 2,2,2,1 --batch 1 --steps 40000 --threads 1"
  "train|--layers 784,512,256,10 --batch 128 --steps 300 --threads 2"
)
for r in $(seq "$ROUNDS"); do
  for c in "${CASES[@]}"; do
    kind=${c%%|*}; args=${c#*|}
    if (( r % 2 )); then old=$(run "$OLD" "$kind" $args); new=$(run "$NEW" "$kind" $args)
    else new=$(run "$NEW" "$kind" $args); old=$(run "$OLD" "$kind" $args); fi
    printf '%s %s\t%s\t%s\n' "$kind" "$args" "$new" "$old" | tee -a "$LOG"
  done
done
python3 - "$LOG" "$BASE" <<'PY'
import sys, statistics, collections
rows = collections.OrderedDict()
for line in open(sys.argv[1]):
    name, a, b = line.rstrip("\n").split("\t")
    rows.setdefault(name, []).append((float(a), float(b)))
print(f"\n| measurement | after (median) | before = {sys.argv[2]} (median) | after/before, median of pairs (min–max) |")
print("| --- | --- | --- | --- |")
for name, pairs in rows.items():
    q = [a / b for a, b in pairs]
    print(f"| {name} | {statistics.median(a for a, _ in pairs):,.1f} | {statistics.median(b for _, b in pairs):,.1f} | "
          f"{statistics.median(q):.3f} ({min(q):.3f}–{max(q):.3f}), {len(q)} pairs |")
PY
