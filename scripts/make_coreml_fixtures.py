#!/usr/bin/env python3
"""Builds the classic-engine test fixtures in tests/golden/coreml/.

For each model: trains it on a dataset that scikit-learn bundles (iris, wine,
breast cancer, digits, diabetes), converts it to a Core ML .mlmodel with
coremltools, and writes NAME.ref holding the test split's inputs and the
source library's own predictions (scikit-learn / XGBoost / libsvm / PyTorch),
which tests/unit/test_coreml.c compares against the C engine. The tests need
no Python: the .mlmodel and .ref files are committed.

Usage:  python3 scripts/make_coreml_fixtures.py [--only PREFIX] [--nn]
Packages: see scripts/coreml_requirements.txt (coremltools 9.0,
scikit-learn 1.5.2, xgboost 1.7.6, numpy 1.26.4, libsvm-official 3.37.0,
torch for --nn).

.ref format (text, one value per token):
    kind classifier|regressor
    labels int|str|none
    inputs array|scalars
    cols C
    outs K          classes (classifier) or values (regressor)
    tol T           relative tolerance for probabilities / values
    atol A          absolute floor: 1e-12, or float32 epsilon where the source
                    library computes in float32 (XGBoost)
    rows R
  then R lines:  x_1 .. x_C  label  y_1 .. y_K
  (label is '-' for regressors; NaN inputs are written 'nan').
"""
import argparse
import os
import sys
import warnings

import numpy as np

warnings.filterwarnings("ignore")
os.environ.setdefault("PYTHONWARNINGS", "ignore")

import coremltools as ct  # noqa: E402
from sklearn import datasets  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

# XGBoost predicts in float32: its outputs carry float32 rounding (p0 = 1 - p1
# has an absolute error of about one float32 epsilon).
F32 = float(np.finfo(np.float32).eps)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden", "coreml")


def load(name):
    fn = {
        "iris": datasets.load_iris,
        "wine": datasets.load_wine,
        "bc": datasets.load_breast_cancer,
        "digits": datasets.load_digits,
        "diabetes": datasets.load_diabetes,
    }[name]
    X, y = fn(return_X_y=True)
    strat = None if name == "diabetes" else y
    return train_test_split(X, y, test_size=0.25, random_state=0, stratify=strat)


def f32(X):
    """Inputs as float32 values (held in float64): tree libraries compare
    float32 features, so the fixture feeds both sides the same numbers."""
    return np.asarray(X, dtype=np.float32).astype(np.float64)


def num(v):
    v = float(v)
    if np.isnan(v):
        return "nan"
    return "%.17g" % v


def write_png_gray(path, px):
    """An 8-bit grayscale PNG, written with zlib (no imaging library needed)."""
    import struct
    import zlib

    def chunk(tag, data):
        c = struct.pack(">I", len(data)) + tag + data
        return c + struct.pack(">I", zlib.crc32(tag + data) & 0xffffffff)
    h, w = px.shape
    raw = b"".join(b"\x00" + px[y].tobytes() for y in range(h))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def write_ref(name, X, kind, labels=None, label_kind="none", outs=None, tol=1e-5,
              inputs="array", atol=1e-12):
    X = np.asarray(X, dtype=np.float64)
    outs = np.asarray(outs, dtype=np.float64)
    if outs.ndim == 1:
        outs = outs[:, None]
    path = os.path.join(OUT, name + ".ref")
    with open(path, "w") as f:
        f.write("kind %s\nlabels %s\ninputs %s\ncols %d\nouts %d\ntol %g\natol %g\nrows %d\n" % (
            kind, label_kind, inputs, X.shape[1], outs.shape[1], tol, atol, X.shape[0]))
        for i in range(X.shape[0]):
            lab = "-" if labels is None else str(labels[i])
            f.write(" ".join(num(v) for v in X[i]) + " " + lab + " " +
                    " ".join(num(v) for v in outs[i]) + "\n")


def save(mlmodel, name):
    spec = mlmodel.get_spec() if hasattr(mlmodel, "get_spec") else mlmodel
    with open(os.path.join(OUT, name + ".mlmodel"), "wb") as f:
        f.write(spec.SerializeToString())
    print("wrote", name, file=sys.stderr)


def sk_classifier(name, model, ds, cast=False, string_labels=None, Xmod=None):
    Xtr, Xte, ytr, yte = load(ds)
    if string_labels is not None:
        ytr = np.array(string_labels)[ytr]
    if cast:
        Xtr, Xte = f32(Xtr), f32(Xte)
    model.fit(Xtr, ytr)
    if Xmod is not None:
        Xte = Xmod(Xte)
    save(ct.converters.sklearn.convert(model), name)
    write_ref(name, Xte, "classifier", model.predict(Xte),
              "str" if string_labels is not None else "int", model.predict_proba(Xte))


def sk_regressor(name, model, ds, cast=False):
    Xtr, Xte, ytr, yte = load(ds)
    if cast:
        Xtr, Xte = f32(Xtr), f32(Xte)
    model.fit(Xtr, ytr)
    save(ct.converters.sklearn.convert(model), name)
    write_ref(name, Xte, "regressor", None, "none", model.predict(Xte))


def make_sklearn():
    from sklearn.ensemble import (GradientBoostingClassifier,
                                  GradientBoostingRegressor, RandomForestClassifier,
                                  RandomForestRegressor)
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import Normalizer, StandardScaler
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    def lr():
        return LogisticRegression(multi_class="ovr", max_iter=5000)

    # GLM
    sk_classifier("glm_iris", lr(), "iris")
    sk_classifier("glm_wine", Pipeline([("sc", StandardScaler()), ("lr", lr())]), "wine")
    sk_classifier("glm_bc", Pipeline([("sc", StandardScaler()), ("lr", lr())]), "bc")
    sk_classifier("glm_digits", lr(), "digits")
    sk_regressor("glm_diabetes", LinearRegression(), "diabetes")
    sk_regressor("ridge_diabetes", Ridge(alpha=0.5), "diabetes")

    # Trees
    sk_classifier("dt_iris_str", DecisionTreeClassifier(max_depth=5, random_state=0), "iris",
                  cast=True, string_labels=["setosa", "versicolor", "virginica"])
    sk_classifier("dt_bc", DecisionTreeClassifier(max_depth=6, random_state=0), "bc", cast=True)
    sk_classifier("rf_wine", RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0),
                  "wine", cast=True)
    sk_classifier("rf_digits", RandomForestClassifier(n_estimators=10, max_depth=8,
                                                      random_state=0), "digits", cast=True)
    sk_classifier("gbc_iris", GradientBoostingClassifier(n_estimators=30, max_depth=2,
                                                         random_state=0), "iris", cast=True)
    sk_classifier("gbc_bc", GradientBoostingClassifier(n_estimators=50, max_depth=3,
                                                       random_state=0), "bc", cast=True)
    sk_regressor("dt_diabetes", DecisionTreeRegressor(max_depth=6, random_state=0), "diabetes",
                 cast=True)
    sk_regressor("rf_diabetes", RandomForestRegressor(n_estimators=20, max_depth=6,
                                                      random_state=0), "diabetes", cast=True)
    sk_regressor("gbr_diabetes", GradientBoostingRegressor(n_estimators=100, max_depth=3,
                                                           random_state=0), "diabetes", cast=True)

    # Pipeline with feature engineering; NaNs in the test split exercise the imputer.
    def holes(X):
        X = X.copy()
        X[::7, 1] = np.nan
        X[3::11, 2] = np.nan
        return X
    sk_classifier("pipe_iris", Pipeline([("imp", SimpleImputer()), ("sc", StandardScaler()),
                                         ("nm", Normalizer()), ("lr", lr())]), "iris", Xmod=holes)

    # DictVectorizer: dictionary input (tests/unit/test_coreml.c checks it by hand).
    from sklearn.feature_extraction import DictVectorizer
    dv = DictVectorizer().fit([{"a": 1.0, "b": 2.0}, {"c": 3.0}])
    save(ct.converters.sklearn.convert(dv), "dictvec")

    # One-hot encoding of integer categories (coremltools builds
    # ArrayFeatureExtractor + OneHotEncoder + FeatureVectorizer), then a GLM.
    from sklearn.preprocessing import OneHotEncoder
    rng = np.random.RandomState(0)
    Xc = rng.randint(0, 4, size=(200, 3)).astype(np.float64)
    yc = ((Xc[:, 0] + 2 * Xc[:, 1] - Xc[:, 2] + rng.randn(200)) > 2).astype(int)
    ohe = OneHotEncoder().fit(Xc[:150])
    save(ct.converters.sklearn.convert(ohe), "ohe_cat")
    write_ref("ohe_cat", Xc[150:], "regressor", None, "none", ohe.transform(Xc[150:]).toarray())
    clf = LogisticRegression(multi_class="ovr").fit(ohe.transform(Xc[:150]), yc[:150])
    pipe = Pipeline([("ohe", OneHotEncoder()), ("lr", LogisticRegression(multi_class="ovr"))])
    pipe.fit(Xc[:150], yc[:150])
    del clf
    save(ct.converters.sklearn.convert(pipe), "ohe_lr_cat")
    write_ref("ohe_lr_cat", Xc[150:], "classifier", pipe.predict(Xc[150:]), "int",
              pipe.predict_proba(Xc[150:]))


def make_xgboost():
    import xgboost as xgb
    # Regressor, 100 trees: the benchmark model too.
    Xtr, Xte, ytr, yte = load("diabetes")
    Xtr, Xte = f32(Xtr), f32(Xte)
    fn = ["f%d" % i for i in range(Xtr.shape[1])]
    m = xgb.XGBRegressor(n_estimators=100, max_depth=3, learning_rate=0.1, random_state=0)
    m.fit(Xtr, ytr)
    save(ct.converters.xgboost.convert(m.get_booster(), feature_names=fn), "xgb_diabetes")
    write_ref("xgb_diabetes", Xte, "regressor", None, "none", m.predict(Xte), inputs="scalars",
              atol=F32)
    # Missing values: NaNs follow each split's default direction.
    Xn = Xte.copy()
    Xn[::3, 2] = np.nan
    Xn[1::4, 8] = np.nan
    Xn[::5, 0] = np.nan
    save(ct.converters.xgboost.convert(m.get_booster(), feature_names=fn), "xgb_diabetes_nan")
    write_ref("xgb_diabetes_nan", Xn, "regressor", None, "none", m.predict(Xn),
              inputs="scalars", atol=F32)

    # Multiclass (softmax) and binary (logistic) classifiers.
    for ds, n_est in (("iris", 20), ("wine", 20), ("bc", 30)):
        Xtr, Xte, ytr, yte = load(ds)
        Xtr, Xte = f32(Xtr), f32(Xte)
        fn = ["f%d" % i for i in range(Xtr.shape[1])]
        m = xgb.XGBClassifier(n_estimators=n_est, max_depth=3, random_state=0)
        m.fit(Xtr, ytr)
        classes = [int(c) for c in m.classes_]
        cm = ct.converters.xgboost.convert(m.get_booster(), feature_names=fn, mode="classifier",
                                           class_labels=classes)
        save(cm, "xgb_" + ds)
        write_ref("xgb_" + ds, Xte, "classifier", m.predict(Xte), "int", m.predict_proba(Xte),
                  inputs="scalars", atol=F32)


def make_svm():
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC, SVR, NuSVC, NuSVR

    def scaled(m):
        return Pipeline([("sc", StandardScaler()), ("svm", m)])

    sk_classifier("svc_rbf_iris", SVC(kernel="rbf", probability=True, random_state=0), "iris")
    sk_classifier("svc_rbf_wine", scaled(SVC(kernel="rbf", probability=True, random_state=0)),
                  "wine")
    sk_classifier("svc_lin_bc", scaled(SVC(kernel="linear", probability=True, random_state=0)),
                  "bc")
    sk_classifier("svc_poly_iris", SVC(kernel="poly", degree=3, coef0=1.0, probability=True,
                                       random_state=0), "iris")
    sk_classifier("svc_sig_wine", scaled(SVC(kernel="sigmoid", gamma=0.01, coef0=0.5,
                                             probability=True, random_state=0)), "wine")
    sk_classifier("nusvc_digits", NuSVC(nu=0.1, gamma=0.001, probability=True, random_state=0),
                  "digits")
    sk_regressor("svr_rbf_diabetes", SVR(kernel="rbf", C=50.0, gamma=0.5), "diabetes")
    sk_regressor("nusvr_lin_diabetes", NuSVR(kernel="linear", C=100.0), "diabetes")
    sk_regressor("svr_poly_diabetes", SVR(kernel="poly", degree=2, coef0=1.0, C=100.0, gamma=1.0),
                 "diabetes")

    # libsvm itself (libsvm-official): multiclass with probabilities, and a
    # regressor. Labels are libsvm's votes (svm_predict without -b), the
    # probabilities svm_predict -b 1 (multiclass: both use the coupling).
    from libsvm import svm as libsvm_svm
    from libsvm import svmutil
    # coremltools' libsvm converter expects the constants older libsvm
    # packages exported; libsvm-official 3.3x no longer does. Values from
    # libsvm's svm.h.
    for k, v in dict(C_SVC=0, NU_SVC=1, ONE_CLASS=2, EPSILON_SVR=3, NU_SVR=4, LINEAR=0, POLY=1,
                     RBF=2, SIGMOID=3, PRECOMPUTED=4).items():
        setattr(libsvm_svm, k, v)
    import libsvm
    if not hasattr(libsvm, "__version__"):
        libsvm.__version__ = "3.37.0"
    for ds, args in (("iris", "-s 0 -t 2 -g 0.25 -c 4 -b 1 -q"),
                     ("wine", "-s 0 -t 1 -d 2 -r 1 -g 0.0001 -c 1 -b 1 -q")):
        Xtr, Xte, ytr, yte = load(ds)
        m = svmutil.svm_train(ytr.tolist(), Xtr.tolist(), args)
        lab, _, _ = svmutil.svm_predict(yte.tolist(), Xte.tolist(), m, "-q")
        _, _, prob = svmutil.svm_predict(yte.tolist(), Xte.tolist(), m, "-b 1 -q")
        # Probability columns follow the model's label order (m.get_labels(),
        # the order of first appearance), which is how the converter writes
        # the class labels.
        save(ct.converters.libsvm.convert(m, input_length=Xtr.shape[1]), "libsvm_" + ds)
        write_ref("libsvm_" + ds, Xte, "classifier", [int(v) for v in lab], "int", prob)
    Xtr, Xte, ytr, yte = load("diabetes")
    m = svmutil.svm_train(ytr.tolist(), Xtr.tolist(), "-s 3 -t 2 -g 0.5 -c 100 -q")
    val, _, _ = svmutil.svm_predict(yte.tolist(), Xte.tolist(), m, "-q")
    save(ct.converters.libsvm.convert(m, input_length=Xtr.shape[1]), "libsvm_diabetes")
    write_ref("libsvm_diabetes", Xte, "regressor", None, "none", val)


def make_nn():
    """PyTorch digits MLP and CNN, converted with convert_to="neuralnetwork";
    FP16 and quantized (8-bit linear, 4-bit lookup table) copies of the MLP
    whose references are the same quantized weights evaluated in NumPy."""
    import copy

    import torch
    import torch.nn as tnn
    from coremltools.models.neural_network import quantization_utils as qu

    torch.manual_seed(0)
    Xtr, Xte, ytr, yte = load("digits")
    Xtr32 = torch.tensor(Xtr / 16.0, dtype=torch.float32)
    ytr_t = torch.tensor(ytr)

    def train(model, shape):
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        for epoch in range(60):
            perm = torch.randperm(len(Xtr32))
            for i in range(0, len(perm), 64):
                idx = perm[i:i + 64]
                opt.zero_grad()
                loss = tnn.functional.cross_entropy(model(Xtr32[idx].reshape(shape)), ytr_t[idx])
                loss.backward()
                opt.step()
        return model.eval()

    mlp = train(tnn.Sequential(tnn.Linear(64, 64), tnn.ReLU(), tnn.Linear(64, 32), tnn.Tanh(),
                               tnn.Linear(32, 10)), (-1, 64))
    cnn = train(tnn.Sequential(tnn.Conv2d(1, 8, 3, padding=1), tnn.BatchNorm2d(8), tnn.ReLU(),
                               tnn.Conv2d(8, 16, 3, padding=1, groups=2), tnn.ReLU(),
                               tnn.MaxPool2d(2), tnn.Conv2d(16, 16, 3, stride=1, padding=2,
                                                            dilation=2),
                               tnn.Sigmoid(), tnn.AvgPool2d(2), tnn.Flatten(),
                               tnn.Linear(64, 10)), (-1, 1, 8, 8))

    class WithSoftmax(tnn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return torch.softmax(self.m(x), dim=1)

    labels = list(range(10))
    Xte32 = torch.tensor(Xte / 16.0, dtype=torch.float32)

    def convert(model, shape, image=False):
        ex = torch.rand(*shape)
        tr = torch.jit.trace(WithSoftmax(model).eval(), ex)
        if image:
            inp = ct.ImageType(name="image", shape=shape, scale=1.0 / 255.0,
                               color_layout=ct.colorlayout.GRAYSCALE)
        else:
            inp = ct.TensorType(name="x", shape=shape)
        return ct.convert(tr, inputs=[inp], convert_to="neuralnetwork",
                          classifier_config=ct.ClassifierConfig(labels))

    with torch.no_grad():
        p_mlp = WithSoftmax(mlp)(Xte32).numpy()
        p_cnn = WithSoftmax(cnn)(Xte32.reshape(-1, 1, 8, 8)).numpy()
    cm_mlp = convert(mlp, (1, 64))
    save(cm_mlp, "nn_mlp_digits")
    write_ref("nn_mlp_digits", Xte / 16.0, "classifier", p_mlp.argmax(1), "int", p_mlp)
    save(convert(cnn, (1, 1, 8, 8)), "nn_cnn_digits")
    write_ref("nn_cnn_digits", Xte / 16.0, "classifier", p_cnn.argmax(1), "int", p_cnn)
    img = convert(cnn, (1, 1, 8, 8), image=True)
    save(img, "nn_cnn_digits_image")
    # A test digit as an 8-bit grayscale PNG (digits are 0..16 -> 0..255).
    k = 5
    px = np.clip(np.round(Xte[k].reshape(8, 8) * 255.0 / 16.0), 0, 255).astype(np.uint8)
    write_png_gray(os.path.join(OUT, "digit_%d.png" % yte[k]), px)
    with torch.no_grad():
        pk = WithSoftmax(cnn)(torch.tensor(px / 255.0, dtype=torch.float32).reshape(1, 1, 8, 8))
    print("png digit: label %d, torch predicts %d" % (yte[k], int(pk.argmax())), file=sys.stderr)

    # Quantized / FP16 copies of the MLP, and their NumPy reference.
    def numpy_mlp(spec, X):
        spec = copy.deepcopy(spec)
        h = X.astype(np.float32)
        for layer in spec.neuralNetworkClassifier.layers:
            kind = layer.WhichOneof("layer")
            if kind == "innerProduct":
                ip = layer.innerProduct
                wp = ip.weights
                for p_, shp in ((ip.weights, (ip.outputChannels, ip.inputChannels)),
                                (ip.bias, (ip.outputChannels,))):
                    if len(p_.rawValue):  # coremltools' own dequantization
                        qu._dequantize_wp(p_, shp)
                if len(wp.float16Value):
                    w = np.frombuffer(wp.float16Value, dtype=np.float16).astype(np.float32)
                else:
                    w = np.array(wp.floatValue, dtype=np.float32)
                w = w.reshape(ip.outputChannels, ip.inputChannels)
                h = h @ w.T
                if ip.hasBias:
                    bp = ip.bias
                    if len(bp.float16Value):
                        bb = np.frombuffer(bp.float16Value, dtype=np.float16).astype(np.float32)
                    else:
                        bb = np.array(bp.floatValue, dtype=np.float32)
                    h = h + bb
            elif kind == "activation":
                a = layer.activation.WhichOneof("NonlinearityType")
                h = np.maximum(h, 0) if a == "ReLU" else np.tanh(h)
            elif kind == "softmaxND":
                e = np.exp(h - h.max(1, keepdims=True))
                h = e / e.sum(1, keepdims=True)
            else:
                raise ValueError(kind)
        return h.astype(np.float64)

    variants = (("fp16", dict(nbits=16)), ("q8", dict(nbits=8, quantization_mode="linear")),
                ("lut4", dict(nbits=4, quantization_mode="linear_lut")))
    for tag, kw in variants:
        q = qu.quantize_weights(cm_mlp, **kw)
        spec = q.get_spec() if hasattr(q, "get_spec") else q
        save(spec, "nn_mlp_digits_" + tag)
        pq = numpy_mlp(spec, Xte / 16.0)
        write_ref("nn_mlp_digits_" + tag, Xte / 16.0, "classifier", pq.argmax(1), "int", pq,
                  tol=1e-3, atol=1e-6)


def make_nn_layers():
    """One network with every supported legacy layer (built with coremltools'
    NeuralNetworkBuilder, random weights) and a NumPy evaluation of it, in
    float64, from the layer semantics documented in NeuralNetwork.proto."""
    from coremltools.models import datatypes
    from coremltools.models.neural_network import NeuralNetworkBuilder

    rng = np.random.RandomState(1)
    C, H, W = 3, 8, 8

    def r(*shape):
        return rng.uniform(-1, 1, size=shape)

    def conv(x, w, b, s=(1, 1), d=(1, 1), pad=(0, 0, 0, 0), groups=1):
        cin, h, wd = x.shape
        co, cg, kh, kw = w.shape
        xp = np.zeros((cin, h + pad[0] + pad[1], wd + pad[2] + pad[3]))
        xp[:, pad[0]:pad[0] + h, pad[2]:pad[2] + wd] = x
        ekh, ekw = (kh - 1) * d[0] + 1, (kw - 1) * d[1] + 1
        ho, wo = (xp.shape[1] - ekh) // s[0] + 1, (xp.shape[2] - ekw) // s[1] + 1
        y = np.zeros((co, ho, wo))
        og = co // groups
        for o in range(co):
            g = o // og
            for i in range(ho):
                for j in range(wo):
                    patch = xp[g * cg:(g + 1) * cg, i * s[0]:i * s[0] + ekh:d[0],
                               j * s[1]:j * s[1] + ekw:d[1]]
                    y[o, i, j] = (patch * w[o]).sum() + b[o]
        return y

    def same_pads(n, k, st):
        o = -(-n // st)
        t = max((o - 1) * st + k - n, 0)
        return t // 2, t - t // 2

    def pool(x, k, st, kind, pads, exclude=True, caffe=False):
        c, h, w = x.shape
        pt, pb, pl, pr = pads
        if caffe:
            ho = -(-(h + 2 * pt - k) // st) + 1
            wo = -(-(w + 2 * pl - k) // st) + 1
            if pt and (ho - 1) * st >= h + pt:
                ho -= 1
            if pl and (wo - 1) * st >= w + pl:
                wo -= 1
            pb = (ho - 1) * st + k - h - pt
            pr = (wo - 1) * st + k - w - pl
        else:
            ho, wo = (h + pt + pb - k) // st + 1, (w + pl + pr - k) // st + 1
        y = np.zeros((c, ho, wo))
        for i in range(ho):
            for j in range(wo):
                y0, x0 = i * st - pt, j * st - pl
                ye, xe = min(y0 + k, h + pb), min(x0 + k, w + pr)
                area = (ye - y0) * (xe - x0)
                win = x[:, max(y0, 0):min(y0 + k, h), max(x0, 0):min(x0 + k, w)]
                if kind == "MAX":
                    y[:, i, j] = win.max(axis=(1, 2))
                elif kind == "AVERAGE":
                    y[:, i, j] = win.sum(axis=(1, 2)) / (win.shape[1] * win.shape[2]
                                                         if exclude else area)
                else:
                    y[:, i, j] = np.sqrt((win ** 2).sum(axis=(1, 2)))
        return y

    b = NeuralNetworkBuilder([("x", datatypes.Array(C, H, W))], [("y", None)])
    x_names = {}

    # conv, grouped, same padding -> [6, 8, 8]
    w1, b1 = r(6, 1, 3, 3), r(6)
    b.add_convolution("conv1", 1, 6, 3, 3, 1, 1, "same", 3, w1.transpose(2, 3, 1, 0), b1, True,
                      input_name="x", output_name="c1")
    # batchnorm
    g, be, mu, var = r(6), r(6), r(6), rng.uniform(0.5, 2, 6)
    b.add_batchnorm("bn", 6, g, be, mu, var, input_name="c1", output_name="bn", epsilon=1e-3)
    # PReLU per channel
    pa = rng.uniform(0, 0.5, 6)
    b.add_activation("prelu", "PRELU", "bn", "a1", params=pa)
    # max pool same, stride 2 -> [6, 4, 4]
    b.add_pooling("pmax", 3, 3, 2, 2, "MAX", "SAME", "a1", "p1")
    # reflection padding -> [6, 6, 6]; conv valid dilated -> [4, 2, 2]
    b.add_padding("padr", 1, 1, 1, 1, 0.0, "p1", "pr", padding_type="reflection")
    w2, b2 = r(4, 6, 3, 3), r(4)
    b.add_convolution("conv2", 6, 4, 3, 3, 1, 1, "valid", 1, w2.transpose(2, 3, 1, 0), b2, True,
                      input_name="pr", output_name="c2", dilation_factors=[2, 2])
    # constant / replication padding, upsample nearest and bilinear
    b.add_padding("padc", 1, 0, 0, 1, 0.5, "c2", "pc", padding_type="constant")  # [4, 3, 3]
    b.add_padding("padp", 0, 1, 1, 0, 0.0, "c2", "pp", padding_type="replication")  # [4, 3, 3]
    b.add_upsample("upn", 2, 2, "pc", "un", mode="NN")  # [4, 6, 6]
    b.add_upsample("upb", 2, 2, "pp", "ub", mode="BILINEAR",
                   linear_upsample_mode="ALIGN_CORNERS_TRUE")  # [4, 6, 6]
    b.add_elementwise("add", ["un", "ub"], "e1", "ADD")
    b.add_elementwise("mul", ["un", "ub"], "e2", "MULTIPLY")
    b.add_elementwise("max", ["un", "ub"], "e3", "MAX")
    b.add_elementwise("ave", ["e1", "e2", "e3"], "e4", "AVE")
    b.add_elementwise("adds", ["e4"], "e5", "ADD", alpha=0.25)
    b.add_elementwise("cat", ["e5", "e3"], "cat", "CONCAT")  # [8, 6, 6]
    # average pooling: include-last-pixel with padding (Caffe), L2 valid, global
    b.add_pooling("pavg", 3, 3, 2, 2, "AVERAGE", "INCLUDE_LAST_PIXEL", "cat", "pa",
                  exclude_pad_area=False, padding_top=1, padding_bottom=1, padding_left=1,
                  padding_right=1)
    b.add_pooling("pl2", 2, 2, 2, 2, "L2", "VALID", "cat", "pl")
    b.add_pooling("pglob", 1, 1, 1, 1, "AVERAGE", "VALID", "cat", "pg", is_global=True)
    # unary ops on |x| + 0.5
    b.add_unary("abs", "pa", "u0", "abs")
    b.add_unary("sqrt", "u0", "u1", "sqrt", shift=0.5)
    b.add_unary("pow", "u1", "u2", "power", alpha=1.5)
    b.add_unary("log", "u2", "u3", "log", epsilon=1e-3)
    b.add_unary("exp", "u3", "u4", "exp", scale=0.5)
    b.add_unary("inv", "u4", "u5", "inverse", epsilon=0.1)
    b.add_unary("rsq", "u5", "u6", "rsqrt", epsilon=0.2)
    b.add_unary("thr", "u6", "u7", "threshold", alpha=0.9)
    # permute to [H, W, C] order, flatten (both modes), inner product
    b.add_permute("perm", (0, 2, 3, 1), "pl", "pm")  # [8, 3, 3] -> (C,H,W)=(3,3,8)
    b.add_flatten("flat", 0, "pm", "f1")
    b.add_flatten("flatl", 1, "u7", "f2")
    b.add_flatten("flatg", 0, "pg", "f3")
    b.add_elementwise("cat2", ["f1", "f2", "f3"], "fc", "CONCAT")
    n_fc = 8 * 3 * 3 + 8 * 4 * 4 + 8
    wi, bi = r(16, n_fc) * 0.3, r(16)
    b.add_inner_product("ip", wi, bi, n_fc, 16, True, "fc", "ip")
    acts = [("RELU", None), ("SIGMOID", None), ("TANH", None), ("SCALED_TANH", [1.5, 0.7]),
            ("SOFTPLUS", None), ("SOFTSIGN", None), ("SIGMOID_HARD", [0.3, 0.4]),
            ("LEAKYRELU", [0.1]), ("ELU", 0.8), ("THRESHOLDEDRELU", 0.2),
            ("LINEAR", [2.0, -0.5]), ("PARAMETRICSOFTPLUS", [rng.uniform(0.5, 1.5, 16),
                                                              rng.uniform(0.5, 1.5, 16)])]
    outs = []
    for i, (a, prm) in enumerate(acts):
        b.add_activation("act%d" % i, a, "ip", "act%d" % i, params=prm)
        outs.append("act%d" % i)
    b.add_reshape("rs", "act0", "rs", (1, 4, 2, 2), 0)
    b.add_softmax("sm", "rs", "sm")
    b.add_flatten("smf", 0, "sm", "smf")
    b.add_elementwise("out", outs + ["smf"], "y", "CONCAT")
    n_out = 16 * (len(acts) + 1)
    b.set_output(["y"], [(n_out,)])
    spec = b.spec
    save(spec, "nn_layers")

    def forward(x):
        c1 = conv(x, w1, b1, pad=same_pads(8, 3, 1) + same_pads(8, 3, 1), groups=3)
        bn = g[:, None, None] * (c1 - mu[:, None, None]) / np.sqrt(var[:, None, None] + 1e-3) + \
            be[:, None, None]
        a1 = np.where(bn >= 0, bn, pa[:, None, None] * bn)
        p1 = pool(a1, 3, 2, "MAX", same_pads(8, 3, 2) + same_pads(8, 3, 2))
        pr = np.pad(p1, ((0, 0), (1, 1), (1, 1)), mode="reflect")
        c2 = conv(pr, w2, b2, d=(2, 2))
        pc = np.pad(c2, ((0, 0), (0, 1), (1, 0)), mode="constant", constant_values=0.5)
        pp = np.pad(c2, ((0, 0), (1, 0), (0, 1)), mode="edge")
        un = pc.repeat(2, axis=1).repeat(2, axis=2)
        n = pp.shape[1]
        src = np.arange(2 * n) * (n - 1) / (2 * n - 1)
        i0 = np.floor(src).astype(int)
        i1 = np.minimum(i0 + 1, n - 1)
        a = src - i0
        t = pp[:, i0, :] * (1 - a)[None, :, None] + pp[:, i1, :] * a[None, :, None]
        ub = t[:, :, i0] * (1 - a)[None, None, :] + t[:, :, i1] * a[None, None, :]
        e1, e2, e3 = un + ub, un * ub, np.maximum(un, ub)
        e5 = (e1 + e2 + e3) / 3 + 0.25
        cat = np.concatenate([e5, e3])
        pa_ = pool(cat, 3, 2, "AVERAGE", (1, 1, 1, 1), exclude=False, caffe=True)
        pl = pool(cat, 2, 2, "L2", (0, 0, 0, 0))
        pg = cat.mean(axis=(1, 2))
        u = np.abs(pa_)
        u = np.sqrt(u + 0.5)
        u = u ** 1.5
        u = np.log(u + 1e-3)
        u = np.exp(0.5 * u)
        u = 1 / (u + 0.1)
        u = 1 / np.sqrt(u + 0.2)
        u = np.maximum(u, 0.9)
        f1 = pl.transpose(1, 2, 0).reshape(-1)
        f2 = u.transpose(1, 2, 0).reshape(-1)
        v = wi @ np.concatenate([f1, f2, pg]) + bi
        res = [np.maximum(v, 0), 1 / (1 + np.exp(-v)), np.tanh(v), 1.5 * np.tanh(0.7 * v),
               np.log1p(np.exp(v)), v / (1 + np.abs(v)), np.clip(0.3 * v + 0.4, 0, 1),
               np.where(v >= 0, v, 0.1 * v), np.where(v >= 0, v, 0.8 * (np.exp(v) - 1)),
               np.where(v > 0.2, v, 0), 2 * v - 0.5,
               acts[-1][1][0] * np.log1p(np.exp(acts[-1][1][1] * v))]
        s4 = np.maximum(v, 0).reshape(4, 4)
        e = np.exp(s4 - s4.max(0))
        res.append((e / e.sum(0)).reshape(-1))
        return np.concatenate(res)

    X = rng.uniform(-1, 1, size=(20, C * H * W))
    Y = np.stack([forward(x.reshape(C, H, W)) for x in X])
    write_ref("nn_layers", X, "regressor", None, "none", Y, tol=1e-4, atol=1e-5)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    np.random.seed(0)
    for name, fn in (("sklearn", make_sklearn), ("xgboost", make_xgboost), ("svm", make_svm),
                     ("nn", make_nn), ("nnlayers", make_nn_layers)):
        if not args.only or name.startswith(args.only):
            fn()


if __name__ == "__main__":
    main()
