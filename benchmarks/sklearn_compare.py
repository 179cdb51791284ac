#!/usr/bin/python3
"""Backprop with no tuning flags against scikit-learn's defaults on the same splits of the shipped CSV files.

    /usr/bin/python3 benchmarks/sklearn_compare.py [--seeds 0,1,2] [--backprop PATH]

For each file and seed it runs `backprop train --data F --seed S --json --quiet` (classification: no other flag;
regression: --task regression --label target; multi-label: --labels even,gt4,prime), reproduces the split backprop
made (benchmarks/dotnet_split.py), checks it by scoring the saved model with `backprop evaluate` on the test rows,
and fits scikit-learn on the same training rows (backprop's train and validation splits: scikit-learn's estimators
hold out nothing by default) with features standardised on them: MLPClassifier(), Ridge() and MLPRegressor(),
random_state=seed. It prints a Markdown table of the mean test metrics over the seeds.
"""
import argparse, csv, gzip, io, json, os, subprocess, sys, tempfile, warnings
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Ridge
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, mean_squared_error, r2_score
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, os.path.dirname(__file__))
from dotnet_split import split  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TAB = os.path.join(ROOT, "data", "tabular")
CLASSIFICATION = ["iris.csv", "wine.csv", "breast_cancer.csv", "digits.csv.gz"]


def read(path):
    raw = open(path, "rb").read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    return rows[0], [r for r in rows[1:] if r]


def class_indices(labels):
    try:
        keys = sorted({int(float(l)) for l in labels})
        index = {k: i for i, k in enumerate(keys)}
        return [index[int(float(l))] for l in labels]
    except ValueError:
        keys = sorted(set(labels))
        index = {k: i for i, k in enumerate(keys)}
        return [index[l] for l in labels]


def backprop(exe, args):
    r = subprocess.run(exe + args, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"backprop {' '.join(args)}: {r.stderr.strip()}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def run(exe, file, seed, label_cols, flags, tmp):
    path = os.path.join(TAB, file)
    header, rows = read(path)
    if label_cols is None:
        label_cols = ["label"] if "label" in header else [header[-1]]
    li = [header.index(c) for c in label_cols]
    fi = [i for i in range(len(header)) if i not in li]
    x = np.array([[float(r[i]) for i in fi] for r in rows])
    y_raw = [[r[i] for i in li] for r in rows]
    classes = class_indices([y[0] for y in y_raw]) if "--task" not in flags and "--labels" not in flags else None
    tr, va, te = split(len(rows), seed, classes)
    model = os.path.join(tmp, "m.safetensors")
    trained = backprop(exe, ["train", "--data", path, "--seed", str(seed), "--json", "--quiet", "--out", model] + flags)
    test_csv = os.path.join(tmp, "test.csv")
    with open(test_csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows[i] for i in te)
    evaluated = backprop(exe, ["evaluate", "--model", model, "--data", test_csv, "--json"])
    fit = tr + va
    return x, y_raw, classes, fit, te, trained, evaluated


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--backprop", default=None, help="the backprop executable (default: dotnet run the CLI in Release)")
    a = ap.parse_args()
    seeds = [int(s) for s in a.seeds.split(",")]
    exe = [a.backprop] if a.backprop else ["dotnet", "run", "--project", os.path.join(ROOT, "src", "Backprop.Cli"), "-c", "Release", "--no-build", "--"]
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    table = []
    with tempfile.TemporaryDirectory() as tmp:
        for file in CLASSIFICATION:
            bp, sk = [], []
            for s in seeds:
                x, y, classes, fit, te, trained, ev = run(exe, file, s, None, [], tmp)
                assert abs(ev["accuracy"] - trained["test_accuracy"]) < 1e-9, f"{file} seed {s}: the reproduced split differs from backprop's"
                yc = np.array(classes)
                m = make_pipeline(StandardScaler(), MLPClassifier(random_state=s)).fit(x[fit], yc[fit])
                bp.append(trained["test_accuracy"])
                sk.append(accuracy_score(yc[te], m.predict(x[te])))
            table.append((file, "(none)", "accuracy", np.mean(bp), {"MLPClassifier()": np.mean(sk)}))

        bp, ridge, mlp = {"r2": [], "rmse": []}, {"r2": [], "rmse": []}, {"r2": [], "rmse": []}
        for s in seeds:
            x, y, _, fit, te, trained, ev = run(exe, "friedman1.csv", s, ["target"], ["--task", "regression", "--label", "target"], tmp)
            assert abs(ev["r2"] - trained["test_r2"]) < 1e-4, f"friedman1 seed {s}: the reproduced split differs from backprop's"
            yv = np.array([float(v[0]) for v in y])
            for name, est, acc in (("ridge", Ridge(), ridge), ("mlp", MLPRegressor(random_state=s), mlp)):
                p = make_pipeline(StandardScaler(), est).fit(x[fit], yv[fit]).predict(x[te])
                acc["r2"].append(r2_score(yv[te], p))
                acc["rmse"].append(mean_squared_error(yv[te], p) ** 0.5)
            bp["r2"].append(trained["test_r2"])
            bp["rmse"].append(trained["test_rmse"])
        for metric in ("r2", "rmse"):
            table.append(("friedman1.csv", "--task regression --label target", metric, np.mean(bp[metric]),
                          {"Ridge()": np.mean(ridge[metric]), "MLPRegressor()": np.mean(mlp[metric])}))

        labels = ["even", "gt4", "prime"]
        bp, sk = {"subset_accuracy": [], "f1_macro": []}, {"subset_accuracy": [], "f1_macro": []}
        for s in seeds:
            x, y, _, fit, te, trained, ev = run(exe, "digits-multilabel.csv", s, labels, ["--labels", ",".join(labels)], tmp)
            assert abs(ev["subset_accuracy"] - trained["test_subset_accuracy"]) < 1e-9, f"multi-label seed {s}: the reproduced split differs"
            yb = np.array([[int(float(v)) for v in r] for r in y])
            p = make_pipeline(StandardScaler(), MLPClassifier(random_state=s)).fit(x[fit], yb[fit]).predict(x[te])
            sk["subset_accuracy"].append(accuracy_score(yb[te], p))
            sk["f1_macro"].append(f1_score(yb[te], p, average="macro", zero_division=0))
            for k in bp:
                bp[k].append(trained["test_" + k])
        for k in bp:
            table.append(("digits-multilabel.csv", "--labels even,gt4,prime", k, np.mean(bp[k]), {"MLPClassifier()": np.mean(sk[k])}))

    print(f"Mean over seeds {a.seeds}; the same 20 % test rows for both; scikit-learn fits backprop's train + validation rows.\n")
    print("| data | backprop flags | test metric | backprop | scikit-learn |")
    print("|---|---|---|---|---|")
    for file, flags, metric, b, others in table:
        sk = ", ".join(f"{name} {v:.4f}" for name, v in others.items())
        print(f"| {file} | `{flags}` | {metric} | {b:.4f} | {sk} |")


if __name__ == "__main__":
    main()
