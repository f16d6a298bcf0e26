"""Training throughput at 32x32 for each speed option, and the local critics' cost.

    python benchmarks/throughput.py [--device auto] [--batches 3] [--epochs 1]
                                    [--compile {auto,yes,no}] [--precisions LIST]
                                    [--models dim,dim-rgb,cmc] [--threads 1]
    python benchmarks/throughput.py --peak-threads 1,2 [--precisions LIST] [--models ...]

Two tables, on random pixels (speed does not depend on the content):

1. Images per second of training, for DIM(L) (``alpha=0, beta=1, gamma=0.1``:
   local MI and the prior, on 1x32x32 grayscale images) and CMC (L/ab views of
   3x32x32 RGB images), at their default batch sizes, for every combination of
   the options that applies on the device: ``precision`` float32 and bfloat16
   (and float16 on CUDA), ``channels_last`` off and on, ``compile`` off and on
   (``--compile auto``, the default, compiles on CUDA only: on a CPU each
   compilation takes minutes; ``--compile yes`` adds it there too).
   Each fit runs one warm-up epoch (compilation happens there) and
   ``--epochs`` timed ones of ``--batches`` batches; images/s is the number
   of images over the fastest timed epoch's duration (skorch's ``dur``:
   every batch plus the end-of-epoch checks). ``speedup`` is relative to
   float32 / channels_last off / compile off.
2. DIM(L)'s ``local_critic="dot"`` against ``"concat"`` in float32: seconds
   per batch and peak memory, each critic in a fresh Python process. Peak
   memory is, on CUDA, ``torch.cuda.max_memory_allocated`` over the fit
   (weights, optimizer state, data and the largest batch's activations);
   on the CPU, the process's peak resident set during the fit (``ru_maxrss``)
   minus its resident set just before it (imports done, a tiny warm-up fit
   run): the memory the fit, mostly one batch's activations, took from the
   system. Memory the process freed earlier and reuses is not counted, so
   this is a lower bound. ``concat/dot`` gives the ratios.

With ``--peak-threads 1,2``, a third table instead: how close each training step
comes to the machine's limit. One step's floating-point operations are counted with
``torch.utils.flop_counter.FlopCounterMode`` (matrix multiplies and convolutions,
forward and backward, both optimizers' steps; see ``step_flops``), divided by the
measured seconds per batch (channels_last on, as the benchmarks train) and set beside a
2048x2048 matrix multiply of the same precision on the same number of threads, timed in
the same run: ``fraction`` is the share of attainable peak the step reaches.

The defaults keep a run short: a few minutes on a CPU core, most of it in
bfloat16, which on a CPU without native bfloat16 instructions (AVX512-BF16,
AMX) is emulated and much slower than float32 (``--precisions float32``
skips it).
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import subprocess
import sys
import time
import warnings

import numpy as np
import pandas as pd
import torch

from sk_dim import CMCTransformer, DeepInfoMaxTransformer

MODELS = {"dim": "DIM(L)", "dim-rgb": "DIM", "cmc": "CMC (L/ab)"}
MATMUL_SIZE = 2048


def make_model(name: str, **params):
    if name == "DIM(L)":
        return DeepInfoMaxTransformer(alpha=0, beta=1, gamma=0.1, **params)
    if name == "DIM":
        return DeepInfoMaxTransformer(**params)
    return CMCTransformer(**params)


def images(name: str, n: int, seed: int = 0) -> np.ndarray:
    """Random uint8 images, 4-D so that their shape is given, not guessed.

    Flat random pixels have no image structure, so ``image_shape="auto"`` rightly reads
    them as feature vectors (the MLP encoder, no augmentation): what this script timed
    for DIM before it passed 4-D arrays.
    """
    channels = 1 if name == "DIM(L)" else 3
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, channels, 32, 32), dtype=np.uint8)


def format_row(row: dict) -> str:
    return "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())


def fit_model(name: str, n_batches: int, epochs: int, device: str, **options):
    """``name`` fitted on ``n_batches`` of random images for ``epochs`` epochs."""
    batch = make_model(name).batch_size
    X = images(name, batch * n_batches)
    params = {"max_epochs": epochs, "device": device, "random_state": 0}
    if name == "CMC (L/ab)":
        params["n_negatives"] = min(4096, len(X) - 1)  # the default exceeds these few images
    model = make_model(name, **params, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model.fit(X)
    if model.input_shape_ != X.shape[1:]:
        raise RuntimeError(f"{name} trained on {model.input_shape_}, not the {X.shape[1:]} images")
    return model


def fit_timed(name: str, args, **options) -> dict:
    """Fit ``name`` on random images; seconds of the fastest timed epoch and its batch count."""
    model = fit_model(name, args.batches, 1 + args.epochs, args.device, **options)
    dur = model.history_["dur"].iloc[1:].min()  # the first epoch is the warm-up
    return {"images": args.batches * model.batch_size, "batches": args.batches, "epoch s": dur}


def step_flops(name: str, device: str) -> float:
    """Floating-point operations of one training step (forward, backward, both optimizers).

    Counted by ``FlopCounterMode`` (matrix multiplies and convolutions, forward and
    backward; element-wise work is not counted, as in every FLOP count of this kind) as
    the difference between fits of two batches and of one, so that what a fit does once
    (building, scaling statistics) cancels out. The count does not depend on precision.
    """
    from torch.utils.flop_counter import FlopCounterMode

    counts = []
    for n_batches in (1, 2):
        counter = FlopCounterMode(display=False)
        # Its per-module tracking hooks the backward pass in a way autograd.grad (the prior's
        # gradient penalty) refuses; the total alone needs no module tracking.
        counter.mod_tracker = _WholeProgram()
        with counter:
            fit_model(name, n_batches, 1, device, precision="float32")
        counts.append(counter.get_total_flops())
    return float(counts[1] - counts[0])


class _WholeProgram:
    """A stand-in for FlopCounterMode's module tracker: every operation counts as global."""

    parents = {"Global"}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def matmul_gflops(precision: str, device: str, repeats: int = 5) -> float:
    """GFLOP/s of a large square matrix multiply: what these cores attain at ``precision``."""
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[precision]
    a, b = (torch.randn(MATMUL_SIZE, MATMUL_SIZE, device=device).to(dtype) for _ in range(2))
    a @ b  # warm-up: kernel selection and page faults
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 2 * MATMUL_SIZE**3 / float(np.median(times)) / 1e9


def peak_table(args) -> pd.DataFrame:
    """Achieved GFLOP/s of each training step against a matrix multiply's, per thread count."""
    flops = {name: step_flops(name, args.device) for name in args.models}
    rows = []
    for threads in args.peak_threads:
        torch.set_num_threads(threads)
        for precision in args.precisions or ("float32", "bfloat16"):
            attainable = matmul_gflops(precision, args.device)
            for name in args.models:
                timing = fit_timed(name, args, precision=precision, channels_last=True)
                seconds = timing["epoch s"] / timing["batches"]
                achieved = flops[name] / seconds / 1e9
                row = {
                    "model": name,
                    "threads": threads,
                    "precision": precision,
                    "GFLOP/step": flops[name] / 1e9,
                    "s/step": seconds,
                    "GFLOP/s": achieved,
                    "matmul GFLOP/s": attainable,
                    "fraction": achieved / attainable,
                }
                rows.append(row)
                print(format_row(row))
    torch.set_num_threads(args.threads)
    return pd.DataFrame(rows)


def option_grid(device: str, compile_too: bool, only: list[str] | None) -> list[dict]:
    cuda = device.startswith("cuda")
    precisions = ["float32", "bfloat16"]
    if cuda:
        if not torch.cuda.is_bf16_supported():
            precisions.remove("bfloat16")
        precisions.append("float16")
    precisions = [p for p in precisions if only is None or p in only]
    compiles = [False, True] if compile_too else [False]
    return [
        {"precision": p, "channels_last": cl, "compile": c}
        for p, cl, c in itertools.product(precisions, [False, True], compiles)
    ]


def throughput_table(args) -> pd.DataFrame:
    rows = []
    for name in args.models:
        base = None
        for options in option_grid(args.device, args.compile, args.precisions):
            timing = fit_timed(name, args, **options)
            ips = timing["images"] / timing["epoch s"]
            base = base or ips  # the grid starts with float32, no channels_last, no compile
            row = {
                "model": name,
                **options,
                "batch": timing["images"] // timing["batches"],
                "s/batch": timing["epoch s"] / timing["batches"],
                "images/s": ips,
                "speedup": ips / base,
            }
            rows.append(row)
            print(format_row(row))
    return pd.DataFrame(rows)


def resident_mib() -> float:
    """The process's resident set now (Linux)."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def one_critic(args) -> None:
    """Child process: fit DIM(L) with ``args.one_critic``; print time and peak memory as JSON."""
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.init()
        torch.cuda.reset_peak_memory_stats(args.device)
    # Loaded before measuring, so that only the fit raises the peak.
    warm = make_model("DIM(L)", max_epochs=1, batch_size=2, device=args.device)
    warm.fit(images("DIM(L)", 4))
    before = resident_mib()
    timing = fit_timed("DIM(L)", args, local_critic=args.one_critic, precision="float32")
    if cuda:
        peak_mib = torch.cuda.max_memory_allocated(args.device) / 2**20
    else:  # ru_maxrss is in KiB on Linux
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10 - before
    print(json.dumps({"s/batch": timing["epoch s"] / timing["batches"], "peak MiB": peak_mib}))


def critic_table(args) -> pd.DataFrame:
    rows = {}
    for critic in ("dot", "concat"):
        command = [sys.executable, __file__, "--one-critic", critic, "--device", args.device]
        command += ["--batches", str(args.batches), "--epochs", str(args.epochs)]
        command += ["--threads", str(args.threads)]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        rows[critic] = json.loads(out.strip().splitlines()[-1])
    table = pd.DataFrame(rows).T
    table.loc["concat/dot"] = table.loc["concat"] / table.loc["dot"]
    table.index.name = "local_critic"
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batches", type=int, default=3, help="batches per epoch")
    parser.add_argument("--epochs", type=int, default=1, help="timed epochs after the warm-up")
    parser.add_argument(
        "--compile", choices=("auto", "yes", "no"), default="auto", help="auto: on CUDA only"
    )
    parser.add_argument(
        "--precisions", type=lambda s: s.split(","), help="e.g. float32,bfloat16 (default: all)"
    )
    parser.add_argument(
        "--models",
        type=lambda s: [MODELS[m] for m in s.split(",")],
        default=list(MODELS.values()),
        help="dim,cmc (default: both)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument(
        "--peak-threads",
        type=lambda s: [int(t) for t in s.split(",")],
        default=None,
        help="e.g. 1,2: only the table of achieved GFLOP/s against a matrix multiply's",
    )
    parser.add_argument("--one-critic", choices=("dot", "concat"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.device == "auto":  # the estimators' own rule: CUDA when there is one
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    cuda = args.device.startswith("cuda")
    args.compile = args.compile == "yes" or (args.compile == "auto" and cuda)
    if args.one_critic:
        one_critic(args)
        return
    where = torch.cuda.get_device_name(args.device) if cuda else "CPU"
    if args.peak_threads:
        print(f"{where}: one training step's FLOPs against a {MATMUL_SIZE}^2 matrix multiply")
        print(peak_table(args).to_string(index=False, float_format="%.3g"))
        return
    print(f"{where}, torch threads={torch.get_num_threads()}, {args.batches} batches x "
          f"{args.epochs} timed epochs after one warm-up epoch")  # fmt: skip
    pd.set_option("display.width", 120)
    table = throughput_table(args)
    print()
    print(table.to_string(index=False, float_format="%.3g"))
    print()
    memory = "CUDA max_memory_allocated" if cuda else "peak RSS during fit - RSS before"
    print(f"DIM(L) local critics, float32, batch {make_model('DIM(L)').batch_size}; "
          f"peak MiB = {memory}")  # fmt: skip
    print(critic_table(args).to_string(float_format="%.3g"))


if __name__ == "__main__":
    main()
