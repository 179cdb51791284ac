#!/usr/bin/python3
"""numpy (OpenBLAS) GEMM anchor: prints GFLOPS (best of several reps) for C = A @ B.

Usage: OPENBLAS_CORETYPE=SkylakeX OPENBLAS_NUM_THREADS=T python3 benchmarks/gemm_numpy.py --n 1024 [--m M --k K] [--dtype float32] [--reps 7]
OPENBLAS_* must be set in the environment before numpy is imported (the script re-execs itself to set them from --threads).
"""
import argparse
import os
import sys
import time

p = argparse.ArgumentParser()
p.add_argument("--n", type=int, required=True)
p.add_argument("--m", type=int)
p.add_argument("--k", type=int)
p.add_argument("--threads", type=int)
p.add_argument("--dtype", default="float32")
p.add_argument("--reps", type=int, default=7)
p.add_argument("--transA", action="store_true")
p.add_argument("--transB", action="store_true")
p.add_argument("--json", action="store_true")
args = p.parse_args()

# Debian's python3-numpy links the generic libblas.so.3; the libopenblas0-pthread package provides OpenBLAS
# (apt-get install libopenblas0-pthread). Put it first on the loader path so the anchor is OpenBLAS, not netlib.
OB_DIR = "/usr/lib/x86_64-linux-gnu/openblas-pthread"
want_threads = str(args.threads) if args.threads is not None else os.environ.get("OPENBLAS_NUM_THREADS", str(os.cpu_count()))
if os.environ.get("_GEMM_NUMPY_REEXEC") != "1":
    env = dict(os.environ, OPENBLAS_NUM_THREADS=want_threads, OMP_NUM_THREADS=want_threads, _GEMM_NUMPY_REEXEC="1")
    env.setdefault("OPENBLAS_CORETYPE", "SkylakeX")
    if os.path.isdir(OB_DIR):
        env["LD_LIBRARY_PATH"] = OB_DIR + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    else:
        print(f"warning: {OB_DIR} missing (apt-get install libopenblas0-pthread); numpy may use netlib BLAS", file=sys.stderr)
    os.execve(sys.executable, [sys.executable] + sys.argv, env)

import numpy as np  # noqa: E402

m = args.m or args.n
k = args.k or args.n
n = args.n
rng = np.random.default_rng(0)
a = rng.standard_normal((k, m) if args.transA else (m, k)).astype(args.dtype)
b = rng.standard_normal((n, k) if args.transB else (k, n)).astype(args.dtype)
A = a.T if args.transA else a
B = b.T if args.transB else b
c = np.empty((m, n), dtype=args.dtype)
flops = 2.0 * m * n * k
inner = max(1, int(2e9 / max(flops, 1)))  # ~>= 1 GFLOP per rep (short reps for tiny shapes)
inner = min(inner, 100000)
for _ in range(3):
    np.matmul(A, B, out=c)
best = 0.0
for _ in range(args.reps):
    t0 = time.perf_counter()
    for _ in range(inner):
        np.matmul(A, B, out=c)
    dt = time.perf_counter() - t0
    best = max(best, flops * inner / dt / 1e9)
if args.json:
    import json
    print(json.dumps({"m": m, "n": n, "k": k, "threads": os.environ.get("OPENBLAS_NUM_THREADS"), "dtype": args.dtype, "gflops": best}))
else:
    print(f"numpy m={m} n={n} k={k} threads={os.environ.get('OPENBLAS_NUM_THREADS')} {args.dtype}: {best:.1f} GFLOPS")
