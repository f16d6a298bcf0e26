"""
Deploying a Pipeline without PyTorch: ONNX export
=================================================

Fit a Pipeline of :class:`sk_dim.DeepInfoMaxTransformer`,
:class:`~sklearn.preprocessing.StandardScaler` and :class:`~sklearn.svm.LinearSVC` on
scikit-learn's digits, convert the whole Pipeline to one ONNX graph with
:func:`sk_dim.to_onnx`, and run it in ``onnxruntime``: the same labels, from a file a
few hundred kB large that needs neither PyTorch nor scikit-learn to run.

Deep InfoMax trains for one epoch on 600 digits here, and pools its local features to a
2x2 grid (``pool_size=2``: 512 features, which the SVM fits in a second), so that the
example takes seconds; each conversion takes a few more (torch's exporter traces the
network). It needs the ``onnx`` extra: ``pip install -e '.[onnx]'`` from a source
checkout.
"""

import copy
import time

import matplotlib.pyplot as plt
import numpy as np
import onnxruntime as ort
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from sk_dim import DeepInfoMaxTransformer, to_onnx

torch.set_num_threads(1)

X, y = load_digits(return_X_y=True)
X = X.astype(np.float32)  # skl2onnx's LinearSVC converter computes in float32
X_train, X_test, y_train, y_test = train_test_split(X, y, train_size=600, random_state=0)

pipe = Pipeline(
    [
        ("dim", DeepInfoMaxTransformer(max_epochs=1, pool_size=2, device="cpu", random_state=0)),
        ("scale", StandardScaler()),
        ("svm", LinearSVC(C=0.01, dual=False)),
    ]
).fit(X_train, y_train)
print(f"test accuracy: {pipe.score(X_test, y_test):.3f}")

# %%
# Convert and run
# ---------------
#
# ``to_onnx`` reads X's dtype and width from one row; the graph takes any number of rows.
# Save it with ``onx.SerializeToString()``; the serving side needs only ``onnxruntime``.

start = time.perf_counter()
onx = to_onnx(pipe, X_train[:1])
seconds, size = time.perf_counter() - start, len(onx.SerializeToString())
print(f"converted in {seconds:.1f} s, {size / 1e3:.0f} kB")

options = ort.SessionOptions()
options.intra_op_num_threads = 1
session = ort.InferenceSession(onx.SerializeToString(), options)
labels, scores = session.run(None, {"X": X_test})
print("same labels as the Pipeline:", bool((labels == pipe.predict(X_test)).all()))
print(f"largest score difference: {np.abs(scores - pipe.decision_function(X_test)).max():.1e}")

# %%
# Features alone
# --------------
#
# A transformer converts on its own too, at its current ``layer`` (and ``view`` for
# CMC): the graph holds only the part of the network that the layer needs. At the top
# layer ``"y"`` it is the whole encoder, a larger file than the Pipeline's above at
# ``"local"``.

dim = copy.deepcopy(pipe.named_steps["dim"]).set_params(layer="y")  # pipe keeps "local"
onx_y = to_onnx(dim, X_test[:1])
features = ort.InferenceSession(onx_y.SerializeToString()).run(None, {"X": X_test})[0]
expected = dim.transform(X_test)
error = np.abs(features - expected).max() / np.abs(expected).max()
print(f"layer='y': {features.shape[1]} features, relative difference {error:.1e}, ", end="")
print(f"{len(onx_y.SerializeToString()) / 1e6:.1f} MB")

# %%
# Speed on one thread
# -------------------
#
# ``transform`` computes the whole encoder, then reads the layer; onnxruntime runs the
# pruned graph. See :doc:`/deployment` for both layers and 32x32 colour images.


def images_per_second(run, n):
    run()
    seconds = min(timed(run) for _ in range(3))
    return n / seconds


def timed(run):
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


speeds = {
    "Pipeline.predict (torch)": images_per_second(lambda: pipe.predict(X_test), len(X_test)),
    "onnxruntime": images_per_second(lambda: session.run(None, {"X": X_test}), len(X_test)),
}
fig, ax = plt.subplots(figsize=(6, 2))
ax.barh(list(speeds), list(speeds.values()), color=["tab:blue", "tab:orange"])
ax.set_xlabel("digits per second, one thread")
fig.tight_layout()
for name, speed in speeds.items():
    print(f"{name}: {speed:.0f} digits/s")
