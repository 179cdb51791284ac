#!/usr/bin/python3
"""Makes the PyTorch reference models with norm and dropout layers for `backprop import`, `export` and `summary` tests.

Run with a Python that has torch (Debian's: /usr/bin/python3; made with torch 1.13):

    /usr/bin/python3 tools/make_torch_layer_models.py

For each model it writes data/torch-models/layers-NAME.safetensors (the nn.Sequential's state_dict, F32 or F64, with
BatchNorm1d's num_batches_tracked as an I64 scalar, written by hand: no safetensors package needed) and
layers-NAME.json: the module layout (the value for `backprop import --layout`), the activations (for
`--activations`, where that form can describe the model), the dtype, the inputs, PyTorch's eval-mode outputs, and
sum(p.numel() for p in model.parameters()) and the buffer element count (running statistics only).
Batch norm's running statistics come from a few training-mode passes, and every weight is random, so that
nothing is at its initial value.
"""
import json
import os
import struct

import torch
from torch import nn

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "torch-models")
DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}


def save_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        data = t.numpy().tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


# name: (modules factory, layout for --layout, activations for --activations or None where that form cannot say it)
MODELS = {
    "bn-relu-dropout-ln": (
        lambda: [nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 5), nn.LayerNorm(5), nn.Tanh(),
                 nn.Linear(5, 3)],
        "linear,batchnorm,relu,dropout:0.3,linear,layernorm,tanh,linear", "relu,tanh"),
    "ln-noaffine-bn-noaffine": (
        lambda: [nn.Linear(6, 8), nn.ReLU(), nn.LayerNorm(8, elementwise_affine=False), nn.Linear(8, 4),
                 nn.BatchNorm1d(4, affine=False), nn.Sigmoid(), nn.Linear(4, 2)],
        "linear,relu,layernorm,linear,batchnorm,sigmoid,linear", None),
    "ln-gelu-bn-silu-nobias": (
        lambda: [nn.Linear(5, 7), nn.LayerNorm(7, eps=1e-5), nn.GELU(), nn.Dropout(0.5), nn.Linear(7, 7, bias=False),
                 nn.BatchNorm1d(7), nn.SiLU(), nn.Linear(7, 3)],
        "linear,layernorm,gelu,dropout,linear,batchnorm,silu,linear", "gelu,silu"),
    "dropout-first-bn-last": (
        lambda: [nn.Dropout(0.1), nn.Linear(4, 6), nn.ELU(), nn.Linear(6, 3), nn.BatchNorm1d(3)],
        "dropout:0.1,linear,elu,linear,batchnorm", None),
}


def make(name, factory, layout, activations, dtype, seed):
    torch.manual_seed(seed)
    model = nn.Sequential(*factory()).to(dtype)
    with torch.no_grad():
        for m in model:
            if isinstance(m, (nn.LayerNorm, nn.BatchNorm1d)) and getattr(m, "weight", None) is not None:
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    inputs = model[0].in_features if isinstance(model[0], nn.Linear) else model[1].in_features
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, inputs, dtype=dtype) * 2 + 0.5)
    model.eval()
    x = torch.randn(10, inputs, dtype=dtype) * 1.5 + 0.25
    with torch.no_grad():
        y = model(x)
    suffix = "f32" if dtype == torch.float32 else "f64"
    stem = f"layers-{name}-{suffix}"
    save_safetensors(os.path.join(OUT, stem + ".safetensors"), model.state_dict())
    buffers = sum(b.numel() for n, b in model.named_buffers() if not n.endswith("num_batches_tracked"))
    info = {
        "torch_version": torch.__version__,
        "modules": [type(m).__name__ for m in model],
        "layout": layout,
        "activations": activations,
        "dtype": "float32" if dtype == torch.float32 else "float64",
        "parameters": sum(p.numel() for p in model.parameters()),
        "buffers": buffers,
        "input": x.tolist(),
        "expected_output": y.tolist(),
    }
    with open(os.path.join(OUT, stem + ".json"), "w") as f:
        json.dump(info, f)
    print(stem, info["parameters"], "parameters")


if __name__ == "__main__":
    for i, (name, (factory, layout, acts)) in enumerate(MODELS.items()):
        for dtype in (torch.float32, torch.float64):
            make(name, factory, layout, acts, dtype, 100 + i)
