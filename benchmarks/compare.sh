#!/usr/bin/env bash
# Side-by-side anchors: Backprop vs OpenBLAS (numpy) GEMM and vs PyTorch training steps, alternating in one run.
# Needs: apt-get install python3-torch python3-numpy libopenblas0-pthread
set -euo pipefail
cd "$(dirname "$0")/.."
export OPENBLAS_CORETYPE=SkylakeX
dotnet build src/Backprop.Cli -c Release -v q >/dev/null
B=src/Backprop.Cli/bin/Release/net10.0/backprop
PY=/usr/bin/python3
for t in 1 2; do
  for n in 256 1024; do
    ours=$($B bench gemm --m $n --n $n --k $n --threads $t --json | tail -1)
    theirs=$(OPENBLAS_NUM_THREADS=$t $PY benchmarks/gemm_numpy.py --n $n --threads $t --json | tail -1)
    echo "gemm n=$n threads=$t backprop=$ours openblas=$theirs"
  done
done
for w in "784,512,512,10 128 200" "784,128,10 32 2000" "2,2,2,1 1 20000"; do
  set -- $w
  ours=$($B bench train --layers $1 --batch $2 --steps $3 --threads 1 --json | tail -1)
  theirs=$(OPENBLAS_NUM_THREADS=1 $PY benchmarks/anchors/torch_bench_step.py --layers $1 --batch $2 --steps $(( $3 / 4 + 10 )) --threads 1 | tail -1)
  echo "step $1 batch $2: backprop=$ours pytorch=$theirs"
done
ours=$($B train --quiet --json --out /tmp/compare-model.safetensors | tail -1)
theirs=$(OPENBLAS_NUM_THREADS=2 $PY benchmarks/anchors/torch_train_mnist.py | tail -1)
echo "mnist reference run: backprop=$ours pytorch=$theirs"
