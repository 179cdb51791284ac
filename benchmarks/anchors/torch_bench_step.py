"""PyTorch anchor for `backprop bench train`: Sequential(Linear, ReLU, ..., Linear), CrossEntropyLoss and
SGD(lr=0.01, momentum=0.9) on random float32 data with random class targets.

    OPENBLAS_CORETYPE=SkylakeX OPENBLAS_NUM_THREADS=1 /usr/bin/python3 benchmarks/anchors/torch_bench_step.py --layers 784,512,512,10 --batch 128 --steps 200 --threads 1
"""
import argparse, json, time
import torch

p = argparse.ArgumentParser()
p.add_argument("--layers", default="784,512,512,10")
p.add_argument("--batch", type=int, default=128)
p.add_argument("--steps", type=int, default=200)
p.add_argument("--threads", type=int, default=1)
a = p.parse_args()
# The matrix products run in OpenBLAS, whose own pool (OPENBLAS_NUM_THREADS) gives the parallelism; torch's
# intra-op pool on top of it oversubscribes the cores (measured here: 68 s instead of 16 s for the MNIST run).
torch.set_num_threads(1)
torch.manual_seed(0)
sizes = [int(s) for s in a.layers.split(",")]
mods = []
for i in range(len(sizes) - 1):
    mods.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
    if i + 2 < len(sizes):
        mods.append(torch.nn.ReLU())
net = torch.nn.Sequential(*mods)
opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
loss_fn = torch.nn.CrossEntropyLoss()
x = torch.rand(a.batch, sizes[0]) * 2 - 1
y = torch.randint(0, sizes[-1], (a.batch,))
def step():
    opt.zero_grad()
    loss_fn(net(x), y).backward()
    opt.step()
for _ in range(10):
    step()
t0 = time.perf_counter()
for _ in range(a.steps):
    step()
secs = time.perf_counter() - t0
print(json.dumps({"samples_per_s": a.batch * a.steps / secs, "step_us": secs * 1e6 / a.steps}))
