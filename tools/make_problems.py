#!/usr/bin/python3
"""Generate PyTorch-answered gradient "problem files" for Backprop.

Each problem is a small fully connected network (weights, optional biases,
one activation per layer), a batch of inputs, a loss and its reduction.
PyTorch 1.13 autograd in float64 computes the expected answers:

  expected.loss             the loss (absent when loss is "none")
  expected.output           the network output, batch x out
  expected.gradients        d(loss)/d(each weight, bias and the input);
                            for loss "none" these are the gradients of
                            output.sum()
  expected.jacobian_output  (loss "none" only) for every layer,
                            d(flattened output)/d(flattened bias), or of the
                            weight when the layer has no bias; one row per
                            output element, row-major

The format is the one described in shared/README.md, section
"reference/gradients/*.json" (layer i computes h_{i+1} = act(h_i @ W.T + b)).

The set of problems is fixed in PROBLEMS below and covers every activation in
hidden and output positions, every loss x reduction, mixed biases, batch
sizes 1..9, depths 1..6, widths 1..10, plus stress cases (large logits,
softplus past its threshold of 20, pre-activations exactly 0 for the
piecewise activations, gelu at -8, tiny weights, a 1x1 network). All random
numbers come from numpy's RandomState seeded with --seed and the problem
index, so a run is deterministic.

After writing, every file is reloaded, checked for finite numbers and a size
limit, and a one-line summary per file is printed.

Run (needs PyTorch, which /usr/bin/python3 has):

  /usr/bin/python3 tools/make_problems.py --out data/problems-generated --seed 7

  --check-only   do not regenerate, only reload and verify the files in --out

Layer problems (--layers): networks with layernorm, batchnorm (training, with the
running statistics after the forward pass in expected.buffers, and eval),
dropout with an explicit mask, and the losses l1, huber (delta),
cross_entropy with class_weights and bce_with_logits with pos_weight, in the
format of docs/layer-problem-format.md. The set is LAYER_PROBLEMS below:

  /usr/bin/python3 tools/make_problems.py --layers --out data/problems-layers-generated --seed 7

(the files in data/problems-layers-generated were made with torch 1.13.0a0).
"""

import argparse
import glob
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)  # bit-for-bit reproducible float64 reductions
DTYPE = torch.float64
MAX_BYTES = 30 * 1024

ACTIVATIONS = ["identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu",
               "softplus", "gelu", "silu", "softmax"]
LOSSES = ["mse", "cross_entropy", "bce_with_logits", "none"]


def activate(name, z):
    if name == "identity":
        return z
    if name == "sigmoid":
        return torch.sigmoid(z)
    if name == "tanh":
        return torch.tanh(z)
    if name == "relu":
        return F.relu(z)
    if name == "leaky_relu":
        return F.leaky_relu(z, negative_slope=0.01)
    if name == "elu":
        return F.elu(z, alpha=1.0)
    if name == "softplus":
        return F.softplus(z, beta=1.0, threshold=20.0)
    if name == "gelu":
        return F.gelu(z, approximate="none")
    if name == "silu":
        return F.silu(z)
    if name == "softmax":
        return F.softmax(z, dim=1)
    raise ValueError(name)


# ---------------------------------------------------------------------------
# Problem specifications
# ---------------------------------------------------------------------------

def spec(desc, dims, acts, batch, loss, reduction=None, bias=True, **opts):
    """dims: [in, h1, ..., out]; acts: one per layer; bias: bool or list."""
    assert len(acts) == len(dims) - 1, desc
    if isinstance(bias, bool):
        bias = [bias] * len(acts)
    assert len(bias) == len(acts), desc
    assert loss in LOSSES and all(a in ACTIVATIONS for a in acts), desc
    assert (loss == "none") == (reduction is None), desc
    return dict(desc=desc, dims=dims, acts=acts, batch=batch, loss=loss,
                reduction=reduction, bias=bias, opts=opts)


# ---- hooks that shape weights / inputs for the stress cases ---------------

def h_logits(magnitude):
    """Last-layer bias of random sign and size ~magnitude (weights of order 1),
    so the output pre-activations / logits sit near +-magnitude."""
    def f(layers, x, rng):
        W, b = layers[-1]
        W *= 2.0
        b[...] = rng.choice([-1.0, 1.0], size=b.shape) * magnitude \
            * rng.uniform(0.8, 1.2, size=b.shape)
    return f


def h_zero_rows(layer_rows):
    """Zero the given weight rows (and bias entries) -> pre-activation == 0."""
    def f(layers, x, rng):
        for li, rows in layer_rows.items():
            W, b = layers[li]
            for r in rows:
                W[r, :] = 0.0
                if b is not None:
                    b[r] = 0.0
    return f


def h_zero_input_cols(cols):
    """Zero some input columns for every sample."""
    def f(layers, x, rng):
        x[:, cols] = 0.0
    return f


def h_exact_preacts(values):
    """Layer 0 is the identity matrix, no bias, and the input rows are set so
    that the first layer's pre-activations are exactly the given values."""
    def f(layers, x, rng):
        W, b = layers[0]
        W[...] = np.eye(W.shape[0])
        assert b is None
        for r in range(x.shape[0]):
            x[r, :] = np.roll(np.array(values, dtype=np.float64), r)
    return f


def h_bias_shift(layer, shift, weight_scale=None):
    """Shift a layer's bias (and optionally shrink its weights) so that its
    pre-activations sit near `shift`."""
    def f(layers, x, rng):
        W, b = layers[layer]
        if weight_scale is not None:
            W *= weight_scale
        b[...] = shift + rng.uniform(-0.5, 0.5, size=b.shape)
    return f


def h_signed_bias(layer, magnitude, weight_scale):
    """Bias alternating +-magnitude, small weights: pre-activations ~ +-magnitude."""
    def f(layers, x, rng):
        W, b = layers[layer]
        W *= weight_scale
        b[...] = np.array([magnitude if i % 2 == 0 else -magnitude
                           for i in range(b.shape[0])])
        b += rng.uniform(-1, 1, size=b.shape)
    return f


def h_all_weights(scale):
    def f(layers, x, rng):
        for W, b in layers:
            W[...] = rng.uniform(-1, 1, size=W.shape) * scale
            if b is not None:
                b[...] = rng.uniform(-1, 1, size=b.shape) * scale
    return f


def h_chain(*hooks):
    def f(layers, x, rng):
        for h in hooks:
            h(layers, x, rng)
    return f


I, S, T, R, L, E, SP, G, SI, SM = ACTIVATIONS
NB = False

PROBLEMS = [
    # ---- every activation in a hidden position ---------------------------
    spec("hidden-identity-mse-mean", [3, 4, 2], [I, I], 2, "mse", "mean"),
    spec("hidden-sigmoid-mse-sum", [4, 5, 3], [S, I], 3, "mse", "sum"),
    spec("hidden-tanh-ce-mean", [2, 6, 3], [T, I], 4, "cross_entropy", "mean"),
    spec("hidden-relu-ce-sum", [5, 7, 3], [R, I], 5, "cross_entropy", "sum"),
    spec("hidden-leaky-relu-bce-mean", [3, 8, 4], [L, I], 6, "bce_with_logits", "mean"),
    spec("hidden-elu-bce-sum", [6, 3, 2], [E, I], 7, "bce_with_logits", "sum"),
    spec("hidden-softplus-none", [4, 4, 1], [SP, I], 3, "none"),
    spec("hidden-gelu-mse-mean", [7, 5, 3], [G, I], 8, "mse", "mean"),
    spec("hidden-silu-mse-sum", [3, 9, 2], [SI, I], 9, "mse", "sum"),
    spec("hidden-softmax-ce-mean", [5, 4, 3], [SM, I], 4, "cross_entropy", "mean"),
    spec("hidden-softmax-tanh-none", [3, 5, 2], [SM, T], 2, "none"),
    spec("hidden-softmax-nobias-bce-sum", [4, 6, 3, 2], [T, SM, I], 5,
         "bce_with_logits", "sum", bias=[True, NB, True]),
    # ---- every activation in the output position --------------------------
    spec("out-identity-none", [3, 4, 2], [T, I], 2, "none"),
    spec("out-sigmoid-mse-mean", [4, 5, 3], [R, S], 3, "mse", "mean"),
    spec("out-sigmoid-bce-sum", [3, 4, 2], [T, S], 4, "bce_with_logits", "sum"),
    spec("out-tanh-mse-sum", [5, 4, 2], [S, T], 4, "mse", "sum"),
    spec("out-tanh-none", [2, 3, 3], [E, T], 2, "none"),
    spec("out-relu-mse-mean", [4, 6, 3], [T, R], 5, "mse", "mean"),
    spec("out-leaky-relu-mse-sum", [3, 5, 4], [S, L], 6, "mse", "sum"),
    spec("out-elu-none", [3, 4, 2], [SI, E], 3, "none"),
    spec("out-elu-ce-mean", [4, 5, 4], [R, E], 5, "cross_entropy", "mean"),
    spec("out-softplus-mse-mean", [6, 4, 3], [G, SP], 4, "mse", "mean"),
    spec("out-gelu-bce-mean", [3, 7, 3], [L, G], 6, "bce_with_logits", "mean"),
    spec("out-silu-ce-mean", [5, 5, 4], [T, SI], 7, "cross_entropy", "mean"),
    spec("out-softmax-mse-mean", [4, 6, 5], [T, SM], 5, "mse", "mean"),
    spec("out-softmax-mse-sum", [3, 4, 3], [R, SM], 3, "mse", "sum",
         bias=[NB, True]),
    spec("out-softmax-none", [3, 4, 3], [S, SM], 2, "none"),
    spec("out-softmax-nobias-none", [2, 3, 2], [G, SM], 1, "none", bias=NB),
    # ---- depth, width, batch, mixed biases, every loss x reduction --------
    spec("depth1-ce-mean", [6, 4], [I], 9, "cross_entropy", "mean"),
    spec("depth1-bce-sum-nobias", [5, 3], [I], 8, "bce_with_logits", "sum", bias=NB),
    spec("depth1-mse-mean-w10-b9-nobias", [10, 10], [T], 9, "mse", "mean", bias=NB),
    spec("depth1-sigmoid-none", [4, 3], [S], 2, "none"),
    spec("depth2-mse-sum-mixedbias", [8, 6, 5], [SP, I], 6, "mse", "sum",
         bias=[NB, True]),
    spec("depth3-mse-mean-mixedbias", [4, 6, 5, 2], [T, R, I], 7, "mse", "mean",
         bias=[True, NB, True]),
    spec("depth3-ce-sum-batch1", [5, 4, 4, 3], [E, G, I], 1, "cross_entropy", "sum"),
    spec("depth4-ce-sum-mixedbias", [6, 7, 5, 4, 3], [R, T, SI, I], 8,
         "cross_entropy", "sum", bias=[NB, True, NB, True]),
    spec("depth4-none-mixedbias", [3, 4, 3, 3, 2], [L, SM, E, I], 2, "none",
         bias=[True, NB, True, NB]),
    spec("depth5-bce-mean", [5, 6, 5, 4, 3, 2], [G, S, L, T, I], 6,
         "bce_with_logits", "mean"),
    spec("depth5-bce-mean-nobias", [4, 5, 5, 4, 3, 2], [SI, E, R, SP, I], 5,
         "bce_with_logits", "mean", bias=NB),
    spec("depth6-all-acts-mse-sum", [5, 6, 6, 5, 5, 4, 3], [S, T, L, E, SP, G], 4,
         "mse", "sum", bias=[True, NB, True, True, NB, True]),
    spec("depth6-none", [3, 4, 3, 3, 3, 2, 2], [SI, R, T, SM, G, I], 1, "none",
         bias=[True, True, NB, True, NB, True]),
    spec("depth6-ce-mean", [4, 5, 5, 5, 5, 5, 4], [T, G, SI, SM, E, I], 3,
         "cross_entropy", "mean"),
    spec("width10-ce-mean", [10, 10, 10, 10], [T, R, I], 5, "cross_entropy", "mean"),
    spec("width10-bce-sum-mixedbias", [9, 10, 8, 10], [G, SI, I], 2,
         "bce_with_logits", "sum", bias=[NB, True, NB]),
    spec("width1-chain-none", [1, 1, 1, 1, 1], [S, T, SP, I], 3, "none"),
    spec("width1-bce-mean-b9", [6, 4, 1], [R, I], 9, "bce_with_logits", "mean"),
    spec("one-by-one-none", [1, 1], [I], 1, "none"),
    spec("one-by-one-mse-mean", [1, 1], [I], 1, "mse", "mean"),
    spec("one-by-one-nobias-sigmoid-mse-sum", [1, 1], [S], 1, "mse", "sum", bias=NB),
    spec("ce-single-class-mean", [3, 2, 1], [T, I], 4, "cross_entropy", "mean"),
    # ---- stress: large logits --------------------------------------------
    spec("large-logits-ce-mean", [4, 5, 4], [T, I], 6, "cross_entropy", "mean",
         hook=h_logits(40.0)),
    spec("large-logits-ce-sum", [3, 6, 5], [S, I], 5, "cross_entropy", "sum",
         hook=h_logits(40.0)),
    spec("large-logits-bce-mean", [4, 5, 3], [T, I], 6, "bce_with_logits", "mean",
         hook=h_logits(40.0)),
    spec("large-logits-bce-sum", [5, 4, 4], [S, I], 4, "bce_with_logits", "sum",
         hook=h_logits(40.0)),
    spec("large-logits-softmax-mse-mean", [3, 5, 4], [T, SM], 4, "mse", "mean",
         hook=h_logits(40.0)),
    spec("large-logits-softplus-mse-mean", [3, 4, 3], [T, SP], 5, "mse", "mean",
         hook=h_logits(40.0)),
    spec("huge-logits-ce-mean", [3, 4, 5], [T, I], 4, "cross_entropy", "mean",
         hook=h_logits(800.0)),
    spec("huge-logits-bce-sum", [3, 4, 3], [S, I], 3, "bce_with_logits", "sum",
         hook=h_logits(800.0)),
    spec("saturated-sigmoid-tanh-elu-mse-mean", [4, 6, 6, 6, 2], [S, T, E, I], 3,
         "mse", "mean", hook=h_chain(h_signed_bias(0, 40.0, 0.1),
                                       h_signed_bias(1, 40.0, 0.1),
                                       h_signed_bias(2, 40.0, 0.1))),
    # ---- stress: softplus threshold (beta=1, threshold=20) -----------------
    spec("softplus-threshold-none", [6, 6, 1], [SP, I], 2, "none",
         bias=[NB, True],
         hook=h_exact_preacts([-40.0, -20.5, 19.5, 20.0, 20.5, 40.0])),
    spec("softplus-threshold-mse-sum", [5, 5, 2], [SP, SP], 3, "mse", "sum",
         bias=[NB, True],
         hook=h_chain(h_exact_preacts([-25.0, 15.0, 20.0, 21.0, 30.0]),
                      h_signed_bias(1, 25.0, 0.01))),
    # ---- stress: pre-activations exactly zero (subgradient convention) -----
    spec("zero-preact-relu-ce-mean", [4, 5, 3], [R, I], 4, "cross_entropy", "mean",
         hook=h_zero_rows({0: [1, 3]})),
    spec("zero-preact-leaky-relu-none", [3, 4, 2], [L, I], 2, "none",
         hook=h_zero_rows({0: [0, 2]})),
    spec("zero-preact-elu-mse-sum", [4, 4, 2], [E, I], 3, "mse", "sum",
         hook=h_zero_rows({0: [1, 2]})),
    spec("zero-preact-relu-output-none", [3, 4, 3], [T, R], 2, "none",
         hook=h_zero_rows({1: [0, 2]})),
    spec("zero-preact-nobias-zero-input-mixed-mse-mean", [4, 6, 6, 5, 2],
         [R, L, E, I], 3, "mse", "mean", bias=NB,
         hook=h_chain(h_zero_input_cols([0, 1, 2, 3]),
                      h_all_weights(0.8))),
    spec("zero-preact-all-kinks-bce-mean", [3, 6, 6, 6, 2], [R, L, E, I], 4,
         "bce_with_logits", "mean", bias=[True, True, True, True],
         hook=h_zero_rows({0: [0, 3], 1: [1, 4], 2: [2, 5]})),
    # ---- stress: gelu at large |x| ----------------------------------------
    spec("gelu-neg8-mse-mean", [4, 5, 2], [G, I], 4, "mse", "mean",
         hook=h_bias_shift(0, -8.0, 0.05)),
    spec("gelu-pm8-none", [3, 4, 2], [G, I], 2, "none",
         hook=h_signed_bias(0, 8.0, 0.05)),
    spec("gelu-neg8-output-bce-sum", [3, 3, 3], [T, G], 3, "bce_with_logits", "sum",
         hook=h_bias_shift(1, -8.0, 0.05)),
    # ---- stress: tiny weights (vanishing gradients) -----------------------
    spec("tiny-weights-sigmoid-depth6-mse-mean", [4, 4, 4, 4, 4, 4, 2],
         [S, S, S, S, S, I], 3, "mse", "mean", hook=h_all_weights(1e-3)),
    spec("tiny-weights-tanh-depth6-none", [3, 3, 3, 3, 3, 3, 1],
         [T, T, T, T, T, I], 2, "none", bias=[NB, True, NB, True, NB, True],
         hook=h_all_weights(1e-3)),
    spec("tiny-weights-ce-sum", [5, 5, 5, 3], [G, SI, I], 4, "cross_entropy", "sum",
         hook=h_all_weights(1e-3)),
]


# ---------------------------------------------------------------------------
# Building and solving one problem
# ---------------------------------------------------------------------------

def build(sp, rng):
    dims, acts = sp["dims"], sp["acts"]
    layers = []
    for i in range(len(acts)):
        fan_in, fan_out = dims[i], dims[i + 1]
        bound = 1.0 / math.sqrt(fan_in)
        W = rng.uniform(-1.6, 1.6, size=(fan_out, fan_in)) * bound
        b = rng.uniform(-0.3, 0.3, size=(fan_out,)) if sp["bias"][i] else None
        layers.append((W, b))
    x = rng.normal(0.0, 1.0, size=(sp["batch"], dims[0]))
    hook = sp["opts"].get("hook")
    if hook is not None:
        hook(layers, x, rng)
    n_out = dims[-1]
    target = None
    if sp["loss"] == "mse":
        target = rng.normal(0.0, 1.0, size=(sp["batch"], n_out))
        if acts[-1] in (S, SM):
            target = rng.uniform(0.0, 1.0, size=(sp["batch"], n_out))
    elif sp["loss"] == "bce_with_logits":
        target = rng.randint(0, 2, size=(sp["batch"], n_out)).astype(np.float64)
    elif sp["loss"] == "cross_entropy":
        target = rng.randint(0, n_out, size=(sp["batch"],))
    return layers, x, target


def solve(sp, layers, x, target):
    params = []
    for W, b in layers:
        Wt = torch.tensor(W, dtype=DTYPE, requires_grad=True)
        bt = torch.tensor(b, dtype=DTYPE, requires_grad=True) if b is not None else None
        params.append((Wt, bt))
    xt = torch.tensor(x, dtype=DTYPE, requires_grad=True)

    def forward(inp, ps):
        h = inp
        for (Wt, bt), act in zip(ps, sp["acts"]):
            z = h @ Wt.T
            if bt is not None:
                z = z + bt
            h = activate(act, z)
        return h

    out = forward(xt, params)
    loss_name, red = sp["loss"], sp["reduction"]
    if loss_name == "mse":
        loss = F.mse_loss(out, torch.tensor(target, dtype=DTYPE), reduction=red)
    elif loss_name == "cross_entropy":
        loss = F.cross_entropy(out, torch.tensor(target, dtype=torch.long), reduction=red)
    elif loss_name == "bce_with_logits":
        loss = F.binary_cross_entropy_with_logits(
            out, torch.tensor(target, dtype=DTYPE), reduction=red)
    else:
        loss = out.sum()

    flat_params = [p for pair in params for p in pair if p is not None]
    grads = torch.autograd.grad(loss, flat_params + [xt], retain_graph=True)
    gi = iter(grads)
    g_layers = []
    for Wt, bt in params:
        entry = {"weight": next(gi).tolist()}
        if bt is not None:
            entry["bias"] = next(gi).tolist()
        g_layers.append(entry)
    g_input = next(gi).tolist()

    expected = {}
    if loss_name != "none":
        expected["loss"] = float(loss.item())
    expected["output"] = out.detach().tolist()
    expected["gradients"] = {"layers": g_layers, "input": g_input}

    if loss_name == "none":
        # One backward per output element, row-major over the output.
        jac_params = [(bt if bt is not None else Wt) for Wt, bt in params]
        flat_out = out.reshape(-1)
        rows = [[] for _ in jac_params]
        for k in range(flat_out.numel()):
            gk = torch.autograd.grad(flat_out[k], jac_params, retain_graph=True)
            for li, g in enumerate(gk):
                rows[li].append(g.reshape(-1).tolist())
        jac = []
        for li, (Wt, bt) in enumerate(params):
            jac.append({"layer": li, "wrt": "bias" if bt is not None else "weight",
                        "rows": rows[li]})
        # Cross-check one layer against torch.autograd.functional.jacobian.
        li = len(params) - 1
        def f_last(p):
            ps = list(params)
            Wt, bt = ps[li]
            ps[li] = (Wt, p) if bt is not None else (p, None)
            return forward(xt.detach(), ps).reshape(-1)
        J = torch.autograd.functional.jacobian(f_last, jac_params[li].detach())
        J = J.reshape(flat_out.numel(), -1)
        assert torch.allclose(J, torch.tensor(rows[li], dtype=DTYPE),
                              rtol=1e-12, atol=1e-15), sp["desc"]
        expected["jacobian_output"] = jac
    return expected


def to_json(idx, sp, layers, x, target, expected):
    name = "gen-%03d-%s" % (idx, sp["desc"])
    jl = []
    for (W, b), act in zip(layers, sp["acts"]):
        entry = {"weight": W.tolist(), "activation": act}
        if b is not None:
            entry["bias"] = b.tolist()
        jl.append(entry)
    doc = {"name": name, "layers": jl, "input": x.tolist(), "loss": sp["loss"]}
    if sp["reduction"] is not None:
        doc["reduction"] = sp["reduction"]
    if target is not None:
        doc["target"] = [int(t) for t in target] if sp["loss"] == "cross_entropy" \
            else target.tolist()
    doc["expected"] = expected
    return name, doc


# ---------------------------------------------------------------------------
# Verification
# ---------------------------------------------------------------------------

def all_numbers(node):
    if isinstance(node, dict):
        for v in node.values():
            yield from all_numbers(v)
    elif isinstance(node, list):
        for v in node:
            yield from all_numbers(v)
    elif isinstance(node, bool):
        return
    elif isinstance(node, (int, float)):
        yield node


def verify_dir(out_dir):
    files = sorted(glob.glob(os.path.join(out_dir, "gen-*.json")))
    ok = True
    for path in files:
        size = os.path.getsize(path)
        with open(path) as fh:
            d = json.load(fh)
        nums = list(all_numbers(d))
        finite = all(math.isfinite(v) for v in nums)
        e = d["expected"]
        dims = [len(d["layers"][0]["weight"][0])] + [len(l["weight"]) for l in d["layers"]]
        acts = ",".join(l["activation"] for l in d["layers"])
        bias = "".join("b" if "bias" in l else "-" for l in d["layers"])
        problems = []
        if not finite:
            problems.append("NON-FINITE")
        if size > MAX_BYTES:
            problems.append("TOO BIG")
        if d["name"] != os.path.basename(path)[:-5]:
            problems.append("NAME MISMATCH")
        if (d["loss"] == "none") != ("jacobian_output" in e):
            problems.append("JACOBIAN PRESENCE")
        if (d["loss"] == "none") == ("loss" in e):
            problems.append("LOSS PRESENCE")
        gmax = max(abs(v) for v in all_numbers(e["gradients"]))
        loss_s = ("%.6g" % e["loss"]) if "loss" in e else "-"
        red = d.get("reduction", "")
        line = "%-55s dims=%-22s acts=%-40s bias=%-6s batch=%d %s/%s loss=%s |g|max=%.3g %5.1fKB %s" % (
            d["name"], "-".join(map(str, dims)), acts, bias, len(d["input"]),
            d["loss"], red or "-", loss_s, gmax, size / 1024.0,
            "OK" if not problems else " ".join(problems))
        print(line)
        ok = ok and not problems
    print("%d files, %s" % (len(files), "all OK" if ok else "PROBLEMS FOUND"))
    return ok, files


def coverage(files):
    hidden, output, lr = set(), set(), set()
    for path in files:
        with open(path) as fh:
            d = json.load(fh)
        acts = [l["activation"] for l in d["layers"]]
        hidden.update(acts[:-1])
        output.add((acts[-1], d["loss"]))
        lr.add((d["loss"], d.get("reduction", "-")))
    print("hidden activations:", ", ".join(a for a in ACTIVATIONS if a in hidden),
          "| missing:", [a for a in ACTIVATIONS if a not in hidden])
    print("output activations:", ", ".join(
        "%s[%s]" % (a, ",".join(sorted(l for (o, l) in output if o == a)))
        for a in ACTIVATIONS))
    print("losses x reductions:", sorted(lr))


# ---------------------------------------------------------------------------
# Layer problems: layernorm, batchnorm, dropout and the newer losses
# ---------------------------------------------------------------------------

def dense(out, act="identity", bias=True):
    return dict(type="dense", out=out, act=act, bias=bias)


def layernorm(act="identity", affine=True, eps=1e-5):
    return dict(type="layernorm", act=act, affine=affine, eps=eps)


def batchnorm(act="identity", affine=True, training=True, eps=1e-5, momentum=0.1):
    return dict(type="batchnorm", act=act, affine=affine, training=training, eps=eps, momentum=momentum)


def dropout(p):
    return dict(type="dropout", p=p)


def lspec(desc, inputs, layers, batch, loss, reduction=None, **settings):
    """settings: delta (huber), class_weights=True, pos_weight=True."""
    assert (loss == "none") == (reduction is None), desc
    return dict(desc=desc, inputs=inputs, layers=layers, batch=batch, loss=loss, reduction=reduction, settings=settings)


LAYER_PROBLEMS = [
    lspec("ln-relu-mse-mean", 4, [dense(6), layernorm(R), dense(3)], 3, "mse", "mean"),
    lspec("ln-noaffine-tanh-l1-sum", 5, [dense(6), layernorm(T, affine=False, eps=1e-3), dense(2)], 4, "l1", "sum"),
    lspec("bn-train-relu-ce-mean", 4, [dense(5), batchnorm(R), dense(3)], 5, "cross_entropy", "mean"),
    lspec("bn-train-noaffine-huber-d05-mean", 3, [dense(4), batchnorm(S, affine=False, momentum=0.3), dense(2)], 4,
          "huber", "mean", delta=0.5),
    lspec("bn-eval-gelu-bce-sum", 4, [dense(5), batchnorm(G, training=False), dense(3)], 3, "bce_with_logits", "sum"),
    lspec("bn-eval-noaffine-mse-sum", 3, [dense(4), batchnorm(E, affine=False, training=False, eps=1e-3), dense(2)], 2,
          "mse", "sum"),
    lspec("drop30-ce-w-mean", 5, [dense(6, R), dropout(0.3), dense(4)], 4, "cross_entropy", "mean", class_weights=True),
    lspec("drop50-huber-d2-sum", 3, [dense(5, T), dropout(0.5), dense(2)], 3, "huber", "sum", delta=2.0),
    lspec("ln-ce-w-sum", 4, [dense(5, T), layernorm(), dense(3)], 5, "cross_entropy", "sum", class_weights=True),
    lspec("bn-train-silu-bce-pw-mean", 4, [dense(5), batchnorm(SI), dense(3)], 4, "bce_with_logits", "mean",
          pos_weight=True),
    lspec("deep-ln-drop-bn-l1-mean", 4, [dense(6, E), layernorm(), dropout(0.2), dense(5), batchnorm(T), dense(2)], 4,
          "l1", "mean"),
    lspec("edge-batch2-bn-train-huber-d1-sum", 3, [dense(4), batchnorm(R, momentum=0.5), dense(2)], 2, "huber", "sum",
          delta=1.0),
    lspec("bn-input-train-mse-mean", 3, [batchnorm(), dense(4, SP), dense(2)], 4, "mse", "mean"),
    lspec("ln-bn-eval-none", 3, [dense(4), layernorm(SI), dense(4), batchnorm(L, training=False), dense(2)], 3, "none"),
]


def build_layers(sp, rng):
    """The layers with their numbers (numpy), the input and the target."""
    width = sp["inputs"]
    built = []
    for l in sp["layers"]:
        b = dict(l)
        if l["type"] == "dense":
            bound = 1.0 / math.sqrt(width)
            b["W"] = rng.uniform(-1.6, 1.6, size=(l["out"], width)) * bound
            b["b"] = rng.uniform(-0.3, 0.3, size=(l["out"],)) if l["bias"] else None
            width = l["out"]
        elif l["type"] in ("layernorm", "batchnorm"):
            if l["affine"]:
                b["W"] = rng.uniform(0.5, 1.5, size=(width,))
                b["b"] = rng.uniform(-0.5, 0.5, size=(width,))
            else:
                b["W"] = b["b"] = None
            if l["type"] == "batchnorm":
                b["running_mean"] = rng.uniform(-0.5, 0.5, size=(width,))
                b["running_var"] = rng.uniform(0.5, 2.0, size=(width,))
        else:
            mask = (rng.uniform(size=(sp["batch"], width)) >= l["p"]).astype(np.float64)
            mask[0, 0] = 0.0  # at least one dropped and one kept unit
            mask[-1, -1] = 1.0
            b["mask"] = mask
        b["width"] = width
        built.append(b)
    x = rng.normal(0.3, 1.2, size=(sp["batch"], sp["inputs"]))
    target = None
    loss = sp["loss"]
    if loss in ("mse", "l1", "huber"):
        target = rng.normal(0.0, 1.0, size=(sp["batch"], width))
    elif loss == "bce_with_logits":
        target = rng.randint(0, 2, size=(sp["batch"], width)).astype(np.float64)
    elif loss == "cross_entropy":
        target = rng.randint(0, width, size=(sp["batch"],))
    settings = {}
    st = sp["settings"]
    if "delta" in st:
        settings["delta"] = st["delta"]
    if st.get("class_weights"):
        settings["class_weights"] = rng.uniform(0.3, 3.0, size=(width,))
    if st.get("pos_weight"):
        settings["pos_weight"] = rng.uniform(0.3, 3.0, size=(width,))
    return built, x, target, settings


def solve_layers(sp, built, x, target, settings):
    def t(a, grad=True):
        return None if a is None else torch.tensor(a, dtype=DTYPE, requires_grad=grad)

    params = []  # per layer: list of (name, tensor)
    stats = []   # per layer: (running_mean, running_var) tensors for batchnorm
    for l in built:
        ps = []
        if l["type"] != "dropout" and l["W"] is not None:
            ps.append(("weight", t(l["W"])))
        if l["type"] != "dropout" and l["b"] is not None:
            ps.append(("bias", t(l["b"])))
        params.append(ps)
        stats.append((t(l["running_mean"], False), t(l["running_var"], False)) if l["type"] == "batchnorm" else None)
    xt = t(x)
    h = xt
    for l, ps, st in zip(built, params, stats):
        d = dict(ps)
        if l["type"] == "dense":
            z = h @ d["weight"].T
            if "bias" in d:
                z = z + d["bias"]
        elif l["type"] == "layernorm":
            z = F.layer_norm(h, (l["width"],), d.get("weight"), d.get("bias"), eps=l["eps"])
        elif l["type"] == "batchnorm":
            z = F.batch_norm(h, st[0], st[1], d.get("weight"), d.get("bias"), training=l["training"],
                             momentum=l["momentum"], eps=l["eps"])
        else:
            z = h * torch.tensor(l["mask"], dtype=DTYPE) / (1.0 - l["p"])
        h = activate(l.get("act", "identity"), z)
    out = h
    loss_name, red = sp["loss"], sp["reduction"]
    if loss_name == "mse":
        loss = F.mse_loss(out, t(target, False), reduction=red)
    elif loss_name == "l1":
        loss = F.l1_loss(out, t(target, False), reduction=red)
    elif loss_name == "huber":
        loss = F.huber_loss(out, t(target, False), reduction=red, delta=settings["delta"])
    elif loss_name == "cross_entropy":
        loss = F.cross_entropy(out, torch.tensor(target, dtype=torch.long), reduction=red,
                               weight=t(settings.get("class_weights"), False))
    elif loss_name == "bce_with_logits":
        loss = F.binary_cross_entropy_with_logits(out, t(target, False), reduction=red,
                                                  pos_weight=t(settings.get("pos_weight"), False))
    else:
        loss = out.sum()
    flat = [p for ps in params for _, p in ps]
    grads = iter(torch.autograd.grad(loss, flat + [xt]))
    g_layers = [{name: next(grads).tolist() for name, _ in ps} for ps in params]
    expected = {"output": out.detach().tolist()}
    if loss_name != "none":
        expected["loss"] = float(loss.item())
    expected["gradients"] = {"layers": g_layers, "input": next(grads).tolist()}
    if any(l["type"] == "batchnorm" and l["training"] for l in built):
        expected["buffers"] = {"layers": [
            {"running_mean": st[0].tolist(), "running_var": st[1].tolist()} if l["type"] == "batchnorm" and l["training"] else {}
            for l, st in zip(built, stats)]}
    return expected


def layers_to_json(idx, sp, built, x, target, settings, expected):
    name = "genl-%03d-%s" % (idx, sp["desc"])
    jl = []
    for l in built:
        e = {"type": l["type"]}
        if l["type"] == "dropout":
            e["p"] = l["p"]
            e["mask"] = [[int(v) for v in row] for row in l["mask"]]
        else:
            if l["W"] is not None:
                e["weight"] = l["W"].tolist()
            if l["b"] is not None:
                e["bias"] = l["b"].tolist()
            if l["type"] == "batchnorm":
                e["running_mean"] = l["running_mean"].tolist()
                e["running_var"] = l["running_var"].tolist()
                e["momentum"] = l["momentum"]
                e["training"] = l["training"]
            if l["type"] != "dense":
                e["eps"] = l["eps"]
            e["activation"] = l["act"]
        jl.append(e)
    doc = {"name": name, "layers": jl, "input": x.tolist(), "loss": sp["loss"]}
    if sp["reduction"] is not None:
        doc["reduction"] = sp["reduction"]
    if target is not None:
        doc["target"] = [int(v) for v in target] if sp["loss"] == "cross_entropy" else target.tolist()
    for k, v in settings.items():
        doc[k] = v.tolist() if isinstance(v, np.ndarray) else v
    doc["expected"] = expected
    return name, doc


def verify_layer_dir(out_dir):
    files = sorted(glob.glob(os.path.join(out_dir, "genl-*.json")))
    ok = True
    for path in files:
        size = os.path.getsize(path)
        with open(path) as fh:
            d = json.load(fh)
        problems = []
        if not all(math.isfinite(v) for v in all_numbers(d)):
            problems.append("NON-FINITE")
        if size > MAX_BYTES:
            problems.append("TOO BIG")
        if d["name"] != os.path.basename(path)[:-5]:
            problems.append("NAME MISMATCH")
        if (d["loss"] == "none") == ("loss" in d["expected"]):
            problems.append("LOSS PRESENCE")
        training_bn = any(l.get("type") == "batchnorm" and l.get("training", True) for l in d["layers"])
        if training_bn != ("buffers" in d["expected"]):
            problems.append("BUFFERS PRESENCE")
        kinds = ",".join(l.get("type", "dense") for l in d["layers"])
        print("%-45s %-45s batch=%d %s/%s %5.1fKB %s" % (d["name"], kinds, len(d["input"]), d["loss"],
              d.get("reduction", "-"), size / 1024.0, "OK" if not problems else " ".join(problems)))
        ok = ok and not problems
    print("%d files, %s (torch %s)" % (len(files), "all OK" if ok else "PROBLEMS FOUND", torch.__version__))
    return ok


def make_layer_problems(out_dir, seed):
    os.makedirs(out_dir, exist_ok=True)
    for old in glob.glob(os.path.join(out_dir, "genl-*.json")):
        os.remove(old)
    for idx, sp in enumerate(LAYER_PROBLEMS, start=1):
        rng = np.random.RandomState([seed, 1000 + idx])
        built, x, target, settings = build_layers(sp, rng)
        expected = solve_layers(sp, built, x, target, settings)
        name, doc = layers_to_json(idx, sp, built, x, target, settings, expected)
        with open(os.path.join(out_dir, name + ".json"), "w") as fh:
            json.dump(doc, fh, indent=1, allow_nan=False)
            fh.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="data/problems-generated")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--check-only", action="store_true")
    ap.add_argument("--layers", action="store_true",
                    help="make the layer problems (LAYER_PROBLEMS) instead of the dense ones")
    args = ap.parse_args()

    if args.layers:
        if not args.check_only:
            make_layer_problems(args.out, args.seed)
        sys.exit(0 if verify_layer_dir(args.out) else 1)

    if not args.check_only:
        os.makedirs(args.out, exist_ok=True)
        for old in glob.glob(os.path.join(args.out, "gen-*.json")):
            os.remove(old)
        names = set()
        for idx, sp in enumerate(PROBLEMS, start=1):
            rng = np.random.RandomState([args.seed, idx])
            layers, x, target = build(sp, rng)
            expected = solve(sp, layers, x, target)
            name, doc = to_json(idx, sp, layers, x, target, expected)
            assert name not in names
            names.add(name)
            with open(os.path.join(args.out, name + ".json"), "w") as fh:
                json.dump(doc, fh, indent=1, allow_nan=False)
                fh.write("\n")
    ok, files = verify_dir(args.out)
    coverage(files)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
