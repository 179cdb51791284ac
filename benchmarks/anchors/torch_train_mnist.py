"""PyTorch anchor for `backprop train`: the same reference run (784-512-256-10 ReLU, Adam lr 1e-3, batch 128,
10 epochs, 55,000 training images, shuffled each epoch, and the 5,000 held-out images evaluated after each epoch,
as backprop's loop does) timed over the training loop only.

    OPENBLAS_CORETYPE=SkylakeX OPENBLAS_NUM_THREADS=2 /usr/bin/python3 benchmarks/anchors/torch_train_mnist.py
"""
import argparse, gzip, json, time
import numpy as np
import torch

p = argparse.ArgumentParser()
p.add_argument("--data", default="data/mnist")
p.add_argument("--epochs", type=int, default=10)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--layers", default="784,512,256,10")
p.add_argument("--torch-threads", type=int, default=1, help="torch intra-op threads (OpenBLAS has its own pool)")
a = p.parse_args()
# The matrix products run in OpenBLAS, whose own pool (OPENBLAS_NUM_THREADS) gives the parallelism; torch's
# intra-op pool on top of it oversubscribes the cores (measured here: 68 s instead of 16 s for the MNIST run).
torch.set_num_threads(a.torch_threads)
torch.manual_seed(0)

def idx(path, offset):
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)

x = torch.tensor(idx(f"{a.data}/train-images-idx3-ubyte.gz", 16).reshape(-1, 784), dtype=torch.float32) / 255
y = torch.tensor(idx(f"{a.data}/train-labels-idx1-ubyte.gz", 8), dtype=torch.long)
xt = torch.tensor(idx(f"{a.data}/t10k-images-idx3-ubyte.gz", 16).reshape(-1, 784), dtype=torch.float32) / 255
yt = torch.tensor(idx(f"{a.data}/t10k-labels-idx1-ubyte.gz", 8), dtype=torch.long)
xv, yv = x[55000:], y[55000:]
x, y = x[:55000], y[:55000]
sizes = [int(s) for s in a.layers.split(",")]
mods = []
for i in range(len(sizes) - 1):
    mods.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
    if i + 2 < len(sizes):
        mods.append(torch.nn.ReLU())
net = torch.nn.Sequential(*mods)
opt = torch.optim.Adam(net.parameters(), lr=1e-3)
loss_fn = torch.nn.CrossEntropyLoss()
t0 = time.perf_counter()
for epoch in range(a.epochs):
    perm = torch.randperm(len(x))
    for i in range(0, len(x), 128):
        idxs = perm[i:i + 128]
        opt.zero_grad()
        loss = loss_fn(net(x[idxs]), y[idxs])
        loss.backward()
        opt.step()
    with torch.no_grad():  # validation each epoch, in batches of 1000 as backprop evaluates
        val_loss = sum(loss_fn(net(xv[i:i + 1000]), yv[i:i + 1000]).item() * len(yv[i:i + 1000]) for i in range(0, len(xv), 1000)) / len(xv)
secs = time.perf_counter() - t0
with torch.no_grad():
    acc = (net(xt).argmax(1) == yt).float().mean().item()
print(json.dumps({"test_accuracy": acc, "train_seconds": secs, "epochs": a.epochs, "samples_per_s": len(x) * a.epochs / secs}))
