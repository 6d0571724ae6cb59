#!/usr/bin/env python3
"""Latency (batch 1) and throughput (batch 1000) of the classic engine against
the libraries the models came from and ONNX Runtime, same model, same machine,
one run, one thread each.

    python3 bench/coreml_bench.py [--coreml build/coreml] [--baseline OLD/coreml]
                                  [--rounds 5] [--out bench/coreml_results.md]

Models (the committed fixtures in tests/golden/coreml/; the script retrains the
source-library model with the fixture script's seed and split, so both sides
hold the same model, and checks that their predictions agree):
  gbr_diabetes   scikit-learn GradientBoostingRegressor, 100 trees, depth 3
  xgb_diabetes   XGBoost XGBRegressor, 100 trees, depth 3
  glm_digits     scikit-learn LogisticRegression (one-vs-rest), 64 features, 10 classes
  svc_rbf_iris   scikit-learn SVC (RBF, probabilities)
  nn_mlp_digits  the PyTorch digits MLP (64-64-32-10), weights read from the .mlmodel

Timing: batch 1 is the median of N single-row calls (rows cycled); batch 1000
is the best of 30 calls on 1000 rows, reported per row. coreml numbers come
from `coreml bench` on the same rows (written to a CSV). The machine is
shared and noisy, so the whole set runs --rounds times, every engine of a
model back to back within a round (interleaved), and the table quotes each
engine's median over the rounds (with the spread of the batch-1000 figure).
--baseline adds another coreml binary (an older build) to every round.
Packages: see scripts/coreml_requirements.txt (onnxruntime, skl2onnx,
onnxmltools).
"""
import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
GOLD = os.path.join(ROOT, "tests", "golden", "coreml")
sys.path.insert(0, os.path.join(ROOT, "scripts"))


def load(name):
    from sklearn import datasets
    from sklearn.model_selection import train_test_split
    fn = {"iris": datasets.load_iris, "digits": datasets.load_digits,
          "diabetes": datasets.load_diabetes}[name]
    X, y = fn(return_X_y=True)
    strat = None if name == "diabetes" else y
    return train_test_split(X, y, test_size=0.25, random_state=0, stratify=strat)


def rows1000(X):
    idx = np.arange(1000) % len(X)
    return np.ascontiguousarray(X[idx])


def time_fn(fn, X, n1=2000):
    """(median us per call at batch 1, us per row at batch 1000)."""
    for i in range(50):
        fn(X[i % len(X):i % len(X) + 1])
    lat = np.empty(n1)
    for i in range(n1):
        r = X[i % len(X):i % len(X) + 1]
        t0 = time.perf_counter()
        fn(r)
        lat[i] = time.perf_counter() - t0
    best = 1e30
    for _ in range(30):
        t0 = time.perf_counter()
        fn(X)
        best = min(best, time.perf_counter() - t0)
    return float(np.median(lat) * 1e6), best * 1e6 / len(X)


def time_coreml(exe, model, X):
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
        f.write(",".join("c%d" % i for i in range(X.shape[1])) + "\n")
        for r in X:
            f.write(",".join("%.17g" % v for v in r) + "\n")
        path = f.name
    out = subprocess.run([exe, "bench", model, "--input", path, "--iters", "20000"],
                         capture_output=True, text=True, check=True).stdout
    os.unlink(path)
    b1 = float(re.search(r"batch 1: +median ([0-9.]+) us/row", out).group(1))
    b1000 = float(re.search(r"batch 1000: ([0-9.]+) us/row", out).group(1))
    return b1, b1000


def ort_session(onx):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(onx.SerializeToString(), so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda X: sess.run(None, {name: X.astype(np.float32)})


def onnx_mlp(layers):
    """The MLP as an ONNX graph: Gemm, Relu, Gemm, Tanh, Gemm, Softmax."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    nodes, inits, prev = [], [], "x"
    for i, (w, b, act) in enumerate(layers):
        inits += [numpy_helper.from_array(w.astype(np.float32), "w%d" % i),
                  numpy_helper.from_array(b.astype(np.float32), "b%d" % i)]
        nodes.append(helper.make_node("Gemm", [prev, "w%d" % i, "b%d" % i], ["g%d" % i],
                                      transB=1))
        prev = "g%d" % i
        if act:
            nodes.append(helper.make_node(act, [prev], ["a%d" % i]))
            prev = "a%d" % i
    nodes.append(helper.make_node("Softmax", [prev], ["y"], axis=1))
    g = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                       [None, 64])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 10])],
                          inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def mlp_from_mlmodel(path):
    from coremltools.proto import Model_pb2
    m = Model_pb2.Model()
    with open(path, "rb") as f:
        m.ParseFromString(f.read())
    layers, pending = [], None
    for layer in m.neuralNetworkClassifier.layers:
        k = layer.WhichOneof("layer")
        if k == "innerProduct":
            ip = layer.innerProduct
            w = np.array(ip.weights.floatValue).reshape(ip.outputChannels, ip.inputChannels)
            pending = [w, np.array(ip.bias.floatValue), None]
            layers.append(pending)
        elif k == "activation":
            a = layer.activation.WhichOneof("NonlinearityType")
            pending[2] = "Relu" if a == "ReLU" else "Tanh"
    return layers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--coreml", default=os.path.join(ROOT, "build", "coreml"))
    ap.add_argument("--baseline", default="", help="an older coreml binary to time alongside")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    benches = []  # (model, engine, thunk returning (b1 us/row, b1000 us/row))

    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC
    from skl2onnx import to_onnx

    def f32(X):
        return np.asarray(X, dtype=np.float32).astype(np.float64)

    def add_coreml(name, Xb):
        model = os.path.join(GOLD, name + ".mlmodel")
        benches.append((name, "coreml (this)", lambda: time_coreml(args.coreml, model, Xb)))
        if args.baseline:
            benches.append((name, "coreml (before)",
                            lambda: time_coreml(args.baseline, model, Xb)))

    def add_sklearn(name, model, X, method, onx_opts=None):
        Xb = rows1000(X)
        fn = getattr(model, method)
        benches.append((name, "scikit-learn " + method, lambda: time_fn(fn, Xb)))
        onx = to_onnx(model, X[:1].astype(np.float32), options=onx_opts, target_opset=17)
        sess = ort_session(onx)
        benches.append((name, "onnxruntime", lambda: time_fn(sess, Xb)))
        add_coreml(name, Xb)

    # 100-tree gradient boosting (scikit-learn)
    Xtr, Xte, ytr, _ = load("diabetes")
    gbr = GradientBoostingRegressor(n_estimators=100, max_depth=3, random_state=0)
    gbr.fit(f32(Xtr), ytr)
    add_sklearn("gbr_diabetes", gbr, f32(Xte), "predict")

    # 100-tree XGBoost
    import xgboost as xgb
    xg = xgb.XGBRegressor(n_estimators=100, max_depth=3, learning_rate=0.1, random_state=0,
                          n_jobs=1)
    xg.fit(f32(Xtr), ytr)
    Xb_xgb = rows1000(f32(Xte))
    booster = xg.get_booster()
    booster.set_param({"nthread": 1})
    benches.append(("xgb_diabetes", "xgboost inplace_predict",
                    lambda: time_fn(lambda X: booster.inplace_predict(X), Xb_xgb)))
    try:
        from onnxmltools import convert_xgboost
        from onnxmltools.convert.common.data_types import FloatTensorType
        onx = convert_xgboost(xg, initial_types=[("x", FloatTensorType([None, 10]))],
                              target_opset=15)
        sess_xgb = ort_session(onx)
        benches.append(("xgb_diabetes", "onnxruntime", lambda: time_fn(sess_xgb, Xb_xgb)))
    except Exception as e:  # noqa: BLE001
        print("onnxmltools xgboost conversion failed:", e, file=sys.stderr)
    add_coreml("xgb_diabetes", Xb_xgb)

    # GLM
    Xtr, Xte, ytr, _ = load("digits")
    lr = LogisticRegression(multi_class="ovr", max_iter=5000).fit(Xtr, ytr)
    add_sklearn("glm_digits", lr, Xte, "predict_proba", {id(lr): {"zipmap": False}})

    # SVM
    Xtr, Xte, ytr, _ = load("iris")
    svc = SVC(kernel="rbf", probability=True, random_state=0).fit(Xtr, ytr)
    add_sklearn("svc_rbf_iris", svc, Xte, "predict_proba", {id(svc): {"zipmap": False}})

    # Digits MLP: PyTorch, ONNX Runtime, coreml
    _, Xte, _, _ = load("digits")
    Xb_mlp = rows1000(Xte / 16.0)
    layers = mlp_from_mlmodel(os.path.join(GOLD, "nn_mlp_digits.mlmodel"))
    try:
        import torch
        torch.set_num_threads(1)
        mods = []
        for w, b, act in layers:
            lin = torch.nn.Linear(w.shape[1], w.shape[0])
            lin.weight.data = torch.tensor(w, dtype=torch.float32)
            lin.bias.data = torch.tensor(b, dtype=torch.float32)
            mods.append(lin)
            if act:
                mods.append(torch.nn.ReLU() if act == "Relu" else torch.nn.Tanh())
        mods.append(torch.nn.Softmax(dim=1))
        net = torch.nn.Sequential(*mods).eval()

        def torch_fn(X):
            with torch.inference_mode():
                return net(torch.from_numpy(X.astype(np.float32)))
        benches.append(("nn_mlp_digits", "pytorch", lambda: time_fn(torch_fn, Xb_mlp)))
    except ImportError:
        pass
    sess_mlp = ort_session(onnx_mlp(layers))
    benches.append(("nn_mlp_digits", "onnxruntime", lambda: time_fn(sess_mlp, Xb_mlp)))
    add_coreml("nn_mlp_digits", Xb_mlp)

    # Rounds: every engine of every model once per round, back to back.
    runs = collections.defaultdict(list)
    for rnd in range(args.rounds):
        for name, eng, thunk in benches:
            runs[(name, eng)].append(thunk())
        print("round %d of %d done" % (rnd + 1, args.rounds), file=sys.stderr, flush=True)

    lines = ["| model | engine | batch 1: us/row (median) | batch 1000: us/row (best of 30) "
             "| batch 1000 range over rounds |",
             "|---|---|---:|---:|---:|"]
    for name, eng, _ in benches:
        r = runs[(name, eng)]
        b1 = float(np.median([x[0] for x in r]))
        bk = [x[1] for x in r]
        lines.append("| %s | %s | %.2f | %.3f | %.3f-%.3f |" % (name, eng, b1, np.median(bk),
                                                               min(bk), max(bk)))
    # Paired per round: did coreml beat the fastest other engine of that round?
    lines += ["", "| model | coreml (this) faster than the fastest other engine, rounds won "
              "(batch 1 / batch 1000) |", "|---|---:|"]
    for name in dict.fromkeys(n for n, _, _ in benches):
        others = [e for n, e, _ in benches if n == name and not e.startswith("coreml")]
        won = [0, 0]
        for i in range(args.rounds):
            me = runs[(name, "coreml (this)")][i]
            for col in (0, 1):
                won[col] += me[col] < min(runs[(name, e)][i][col] for e in others)
        lines.append("| %s | %d / %d of %d |" % (name, won[0], won[1], args.rounds))
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
