#!/usr/bin/env bash
# The reference MNIST run (784-512-256-10, Adam, batch 128, 10 epochs) with 2 ranks × 1 thread under mpirun against
# 1 process × 2 threads, pair by pair (A B A B …, after one warm-up pair): whole processes timed from outside, the
# training loop from the --json line. Prints each pair and the medians of the pairs' ratios. docs/distributed.md.
#
#   bash benchmarks/distributed.sh [PAIRS] [EPOCHS] [BUILD]     (default 7 pairs, 10 epochs, aot; needs mpirun)
#
# BUILD aot runs the Native AOT build (published into out/aot first; needs clang and zlib1g-dev), the build that
# docs/distributed.md runs under mpirun; jit runs the JIT build (dotnet backprop.dll). Both sides of a pair run the
# same build.
set -euo pipefail
cd "$(dirname "$0")/.."
PAIRS=${1:-7}
EPOCHS=${2:-10}
BUILD=${3:-aot}
case "$BUILD" in
  aot) dotnet publish src/Backprop.Cli -c Release -r linux-x64 -p:PublishAot=true -o out/aot -v q >/dev/null
       CMD=out/aot/backprop ;;
  jit) dotnet build src/Backprop.Cli -c Release -v q >/dev/null
       CMD="dotnet src/Backprop.Cli/bin/Release/net10.0/backprop.dll" ;;
  *) echo "BUILD is aot or jit, not $BUILD" >&2; exit 2 ;;
esac
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
grep -m1 'model name' /proc/cpuinfo; grep -m1 'cpu family' /proc/cpuinfo; grep -m1 '^model\s' /proc/cpuinfo
echo "build: $BUILD ($CMD)"
/usr/bin/env python3 - "$PAIRS" "$EPOCHS" "$CMD" <<'PY'
import json, os, statistics, subprocess, sys, time
pairs, epochs, cmd = int(sys.argv[1]), sys.argv[2], sys.argv[3].split()
out = "out/distributed-bench"
os.makedirs(out, exist_ok=True)
common = ["train", "--quiet", "--json", "--epochs", epochs]
ranks = ["mpirun", "-np", "2", "--oversubscribe"] + cmd + common + ["--distributed", "--threads", "1", "--out", f"{out}/a.safetensors"]
one = cmd + common + ["--threads", "2", "--out", f"{out}/b.safetensors"]
def run(cmd):
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return time.perf_counter() - t, json.loads(r.stdout.strip().splitlines()[-1])
run(ranks); run(one)                                   # warm-up pair: page cache, first start
rows = []
for i in range(pairs):
    wa, ja = run(ranks)
    wb, jb = run(one)
    rows.append((wa, ja, wb, jb))
    print(f"pair {i + 1}: 2 ranks {wa:.2f} s (loop {ja['train_seconds']:.2f} s, communication {ja.get('allreduce_ms_per_step', 0):.3f} ms a step, "
          f"{100 * ja.get('allreduce_share', 0):.0f}%), 1 process {wb:.2f} s (loop {jb['train_seconds']:.2f} s), "
          f"accuracy {ja['test_accuracy']:.4f} / {jb['test_accuracy']:.4f}", flush=True)
def med(f): return statistics.median(f(r) for r in rows)
loop = [r[1]["train_seconds"] / r[3]["train_seconds"] for r in rows]
whole = [r[0] / r[2] for r in rows]
print(f"training loop: 2 ranks {med(lambda r: r[1]['train_seconds']):.2f} s, 1 process {med(lambda r: r[3]['train_seconds']):.2f} s, "
      f"ratio {statistics.median(loop):.2f} ({min(loop):.2f}-{max(loop):.2f})")
print(f"whole process: 2 ranks {med(lambda r: r[0]):.2f} s, 1 process {med(lambda r: r[2]):.2f} s, "
      f"ratio {statistics.median(whole):.2f} ({min(whole):.2f}-{max(whole):.2f})")
PY
