#!/usr/bin/env bash
# Native AOT against the JIT build, in one run, pair by pair: start-up (`grad` on the seed problem and `--version`,
# median of 30 starts each, alternating), `bench gemm` 1024³ float32 and `bench train` 784-512-512-10 batch 128 at 1 and
# 2 threads (ROUNDS pairs each, median ratio). README, "Native AOT".
#
#   bash benchmarks/aot.sh [ROUNDS]        (default 5; publishes into out/aot first; needs clang and zlib1g-dev)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
dotnet build src/Backprop.Cli -c Release -v q >/dev/null
dotnet publish src/Backprop.Cli -c Release -r linux-x64 -p:PublishAot=true -o out/aot -v q >/dev/null
JIT=src/Backprop.Cli/bin/Release/net10.0/backprop
AOT=out/aot/backprop
SEED=data/problems/seed-fc-relu-batch-mean.json
grep -m1 'model name' /proc/cpuinfo; grep -m1 'cpu family' /proc/cpuinfo; grep -m1 '^model\s' /proc/cpuinfo
/usr/bin/env python3 - "$JIT" "$AOT" "$SEED" "$ROUNDS" <<'PY'
import json, statistics, subprocess, sys, time
jit, aot, seed, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def start(cmd):
    t = time.perf_counter(); subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True); return time.perf_counter() - t
for args in (["grad", seed], ["--version"]):
    a, j = [], []
    for _ in range(3): start([aot] + args); start([jit] + args)         # warm the page cache
    for _ in range(30): a.append(start([aot] + args)); j.append(start([jit] + args))
    print(f"start-up {' '.join(args[:1])}: AOT {statistics.median(a)*1e3:.1f} ms, JIT {statistics.median(j)*1e3:.1f} ms (median of 30)")
def last_json(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])
for name, args, key in (("bench gemm 1024³", ["bench", "gemm", "--m", "1024", "--n", "1024", "--k", "1024"], "gflops"),
                        ("bench train 784-512-512-10 b128", ["bench", "train", "--layers", "784,512,512,10", "--batch", "128", "--steps", "300"], "samples_per_s")):
    for threads in (1, 2):
        ratios, av, jv = [], [], []
        for _ in range(rounds):
            x = last_json([aot] + args + ["--threads", str(threads), "--json"])[key]
            y = last_json([jit] + args + ["--threads", str(threads), "--json"])[key]
            av.append(x); jv.append(y); ratios.append(x / y)
        print(f"{name}, {threads} thread(s): AOT {statistics.median(av):.1f}, JIT {statistics.median(jv):.1f} {key}, AOT/JIT {statistics.median(ratios):.3f} (median of {rounds} pairs)")
PY
