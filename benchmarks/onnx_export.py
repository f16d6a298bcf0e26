"""Transform throughput in onnxruntime against torch, and the ONNX file against sk_dim.save.

    python benchmarks/onnx_export.py [--threads 1,2] [--images 512] [--repeats 3]
                                     [--models dim,cmc] [--layers local,y]
                                     [--results onnx_export]

For DIM and CMC, each fitted for one epoch in float32 on the CPU (the weights do not
change the speed), on 8x8 digits (scikit-learn's, as float64 rows) and on 32x32 RGB
images (random uint8 pixels), at ``layer="local"`` (the default) and at the top layer
(``"y"``, CMC's ``"embedding"``), the script converts the transformer with
:func:`sk_dim.to_onnx` and times, side by side in one process,
``transform`` (torch, its own batching) and ``InferenceSession.run`` on the whole array
(onnxruntime's CPU provider), with 1 and 2 threads: ``torch.set_num_threads`` and
onnxruntime's ``intra_op_num_threads`` (``inter_op_num_threads=1``). images/s is
``--images`` over the fastest of ``--repeats`` runs, after one warm-up run. A second
table gives the size of the ONNX file (the feature extractor up to the layer, float32)
against the ``sk_dim.save`` file (the whole network, with DIM's critics and
discriminator), and the conversion time.

``transform`` runs the whole encoder whatever the layer, then reads the layer; the ONNX
graph holds only what the layer needs (the exporter drops the rest). At the top layer
both compute the same network.

It needs the ``onnx`` extra (``pip install -e '.[onnx]'``); a couple of minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import torch
from _protocol import markdown, report
from sklearn.datasets import load_digits

import sk_dim
from sk_dim import CMCTransformer, DeepInfoMaxTransformer

MODELS = {"dim": ("DIM", DeepInfoMaxTransformer), "cmc": ("CMC", CMCTransformer)}
TOP = {"DIM": "y", "CMC": "embedding"}
FIT = dict(max_epochs=1, device="cpu", precision="float32", batch_size=64, random_state=0)
FIT_IMAGES = 256


def datasets(n_images: int) -> dict[str, tuple[np.ndarray, tuple[int, int, int]]]:
    """The timed images and their shape: digits (float64, repeated) and random RGB uint8."""
    digits = load_digits().data
    rng = np.random.default_rng(0)
    return {
        "digits 8x8": (np.resize(digits, (n_images, digits.shape[1])), (1, 8, 8)),
        "RGB 32x32": (
            rng.integers(0, 256, (n_images, 3 * 32 * 32), dtype=np.uint8),
            (3, 32, 32),
        ),
    }


def best_seconds(run, repeats: int) -> float:
    run()  # warm-up: first-call allocations, thread pools
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def session(onx, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(
        onx.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def time_one(args, model, model_name, data_name, X, speed, sizes) -> None:
    """Convert ``model`` at its layer, add its sizes row and its speed rows."""
    start = time.perf_counter()
    onx = sk_dim.to_onnx(model, X[:1])
    convert_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.skdim"
        sk_dim.save(model, path)
        saved_mb = path.stat().st_size / 2**20
    common = {"data": data_name, "model": model_name, "layer": model.layer}
    sizes.append(
        {
            **common,
            "features": model.transform(X[:1]).shape[1],
            "ONNX MB": len(onx.SerializeToString()) / 2**20,
            "sk_dim.save MB": saved_mb,
            "convert s": convert_s,
        }
    )
    for threads in args.threads:
        torch.set_num_threads(threads)
        sess = session(onx, threads)
        name = sess.get_inputs()[0].name
        torch_s = best_seconds(lambda: model.transform(X), args.repeats)
        ort_s = best_seconds(lambda: sess.run(None, {name: X}), args.repeats)  # noqa: B023
        row = {
            **common,
            "threads": threads,
            "torch images/s": args.images / torch_s,
            "onnxruntime images/s": args.images / ort_s,
            "onnxruntime / torch": torch_s / ort_s,
        }
        speed.append(row)
        print(row, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=lambda s: [int(t) for t in s.split(",")], default=[1, 2])
    parser.add_argument("--images", type=int, default=512, help="images per timed run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (the best counts)")
    parser.add_argument(
        "--models", type=lambda s: [MODELS[m] for m in s.split(",")], default=list(MODELS.values())
    )
    parser.add_argument(
        "--layers", type=lambda s: s.split(","), default=["local", "y"], help="y: the top layer"
    )
    parser.add_argument("--results", default="onnx_export", help="results/NAME.md; 'none'")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    speed, sizes = [], []
    for data_name, (X, shape) in datasets(args.images).items():
        for model_name, cls in args.models:
            torch.set_num_threads(max(args.threads))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # n_negatives capped
                # The shape given: random pixels are not recognised as images.
                model = cls(image_shape=shape, **FIT).fit(X[:FIT_IMAGES])
            for layer in args.layers:
                layer = TOP[model_name] if layer == "y" else layer
                model.set_params(layer=layer)
                time_one(args, model, model_name, data_name, X, speed, sizes)

    speed, sizes = pd.DataFrame(speed), pd.DataFrame(sizes)
    title = (
        f"transform throughput, onnxruntime {ort.__version__} against torch "
        f"{torch.__version__}, CPU, {os.cpu_count()} cores, "
        f"{args.images} images per run"
    )
    notes = [
        "Size of the files and conversion time (`sk_dim.to_onnx`, mostly torch's exporter):",
        "",
        markdown(sizes),
        "",
        "- torch: `transform` (input checks, batches of 256); onnxruntime: one "
        "`InferenceSession.run` on the whole array; best of "
        f"{args.repeats} runs after a warm-up, the same process, one after the other",
        "- digits: float64 rows (as scikit-learn gives them, cast in the graph); "
        "RGB: random uint8 pixels",
        f"- load average (1 min) before and after: {load_before:.1f}, "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
    ]
    command = "python benchmarks/onnx_export.py " + shlex.join(sys.argv[1:])
    report(args.results, title, speed, command, notes)


if __name__ == "__main__":
    main()
