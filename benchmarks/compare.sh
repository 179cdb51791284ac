#!/usr/bin/env bash
# Side-by-side anchors, alternating in one run: Backprop vs OpenBLAS (numpy) GEMM, vs PyTorch training steps and
# vs PyTorch on the reference MNIST run, and Backprop's compiled inference vs ONNX Runtime on the reference
# 784-512-512-10 model's own `backprop export` (batch 1, 128 and 1024 at 1 and 2 threads). Each pair runs back to back and its ratio is taken pair by pair, so a
# machine whose speed drifts (a shared VM) still compares like with like; the summary gives the median ratio.
#
#   bash benchmarks/compare.sh [ROUNDS] [MNIST_ROUNDS]     (defaults 3 and 5; results also in out/compare/)
#   bash benchmarks/compare.sh infer [ROUNDS]              (only the ONNX Runtime inference pairs; default 3 rounds)
#   bash benchmarks/compare.sh gemm [ROUNDS]               (only GEMM against OpenBLAS: float32 and float64, 1 and 2
#                                                           threads, n = 256…2048 and the training shapes; default 3)
#
# Needs: apt-get install python3-torch python3-numpy libopenblas0-pthread
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=all
if [ "${1:-}" = infer ]; then MODE=infer; shift; fi
if [ "${1:-}" = gemm ]; then MODE=gemm; shift; fi
ROUNDS=${1:-3}
MNIST_ROUNDS=${2:-5}
export OPENBLAS_CORETYPE=SkylakeX
dotnet build src/Backprop.Cli -c Release -v q >/dev/null
B=src/Backprop.Cli/bin/Release/net10.0/backprop
PY=/usr/bin/python3
mkdir -p out/compare
LOG=out/compare/pairs.tsv
: > "$LOG"
num() { grep -o "\"$1\": *[0-9.e+-]*" | head -1 | sed 's/.*: *//'; }

if [ "$MODE" = all ]; then
for r in $(seq "$ROUNDS"); do
  for t in 1 2; do
    for n in 256 1024; do
      ours=$($B bench gemm --m $n --n $n --k $n --threads $t --json | tail -1 | num gflops)
      theirs=$(OPENBLAS_NUM_THREADS=$t $PY benchmarks/gemm_numpy.py --n $n --threads $t --json | tail -1 | num gflops)
      printf 'gemm n=%s, %s thread(s)\t%s\t%s\n' "$n" "$t" "$ours" "$theirs" | tee -a "$LOG"
    done
  done
  for w in "784,512,512,10 128 300" "784,128,10 32 4000" "2,2,2,1 1 40000"; do
    set -- $w
    ours=$($B bench train --layers $1 --batch $2 --steps $3 --threads 1 --json | tail -1 | num samples_per_s)
    theirs=$(OPENBLAS_NUM_THREADS=1 $PY benchmarks/anchors/torch_bench_step.py --layers $1 --batch $2 --steps $(( $3 / 4 + 10 )) --threads 1 | tail -1 | num samples_per_s)
    printf 'step %s batch %s, 1 thread (samples/s)\t%s\t%s\n' "$1" "$2" "$ours" "$theirs" | tee -a "$LOG"
  done
done
for r in $(seq "$MNIST_ROUNDS"); do
  ours=$($B train --quiet --json --out out/compare/model.safetensors | tail -1)
  theirs=$(OPENBLAS_NUM_THREADS=2 $PY benchmarks/anchors/torch_train_mnist.py | tail -1)
  echo "mnist: backprop $ours pytorch $theirs" >> out/compare/mnist.log
  # time ratio: ours/theirs (lower is better), written as the other figures: higher-is-better first
  printf 'mnist reference run, train seconds\t%s\t%s\n' "$(echo "$ours" | num train_seconds)" "$(echo "$theirs" | num train_seconds)" | tee -a "$LOG"
done
fi

if [ "$MODE" = gemm ]; then
# m×k·k×n: squares, and the training products of 784-512-512-10 at batch 32…256 and of 784-1024-1024-10 at batch 256
for r in $(seq "$ROUNDS"); do
  for dt in float32 float64; do
    for t in 1 2; do
      for s in "256 256 256" "512 512 512" "1024 1024 1024" "2048 2048 2048" "32 784 512" "128 784 512" "128 512 512" "256 784 512" "256 1024 1024"; do
        set -- $s
        ours=$($B bench gemm --m $1 --k $2 --n $3 --threads $t --dtype $dt --json | tail -1 | num gflops)
        theirs=$(OPENBLAS_NUM_THREADS=$t $PY benchmarks/gemm_numpy.py --m $1 --k $2 --n $3 --threads $t --dtype $dt --json | tail -1 | num gflops)
        printf 'gemm %s %sx%sx%s, %s thread(s)\t%s\t%s\n' "$dt" "$1" "$2" "$3" "$t" "$ours" "$theirs" | tee -a "$LOG"
      done
    done
  done
done
fi

if [ "$MODE" != gemm ]; then
# Inference: the reference 784-512-512-10 model (one MNIST epoch; the weights do not change the work) and its own
# ONNX export; the benchmark runs Backprop's compiled forward pass (as `bench infer`) and ONNX Runtime pair by pair.
MODEL=out/compare/infer-model.safetensors
[ -f "$MODEL" ] || $B train --epochs 1 --layers 784,512,512,10 --quiet --out "$MODEL" >/dev/null
$B export --model "$MODEL" --onnx out/compare/infer-model.onnx >/dev/null
dotnet build benchmarks/OnnxRuntimeCompare -c Release -v q >/dev/null
dotnet benchmarks/OnnxRuntimeCompare/bin/Release/net10.0/OnnxRuntimeCompare.dll --model "$MODEL" --onnx out/compare/infer-model.onnx \
  --rounds "$ROUNDS" | tee -a "$LOG"
fi

$PY - "$LOG" <<'PY'
import sys, statistics, collections
rows = collections.OrderedDict()
for line in open(sys.argv[1]):
    name, a, b = line.rstrip("\n").split("\t")
    rows.setdefault(name, []).append((float(a), float(b)))
print("\n| measurement | Backprop (median) | anchor (median) | ratio, median of pairs (min–max) |")
print("| --- | --- | --- | --- |")
for name, pairs in rows.items():
    q = [a / b for a, b in pairs]
    print(f"| {name} | {statistics.median(a for a, _ in pairs):,.1f} | {statistics.median(b for _, b in pairs):,.1f} | "
          f"{statistics.median(q):.2f}× ({min(q):.2f}–{max(q):.2f}), {len(q)} pairs |")
PY
