"""sk_dim's batched views against kornia's: images per second and colour-conversion error.

    python benchmarks/views.py [--threads 1,2] [--batches 128,256] [--repeats 9]
                               [--sample-s 0.1] [--results views]

For each torch thread count and batch size, on random 32x32 RGB float32 images in
``[0, 1]`` on the CPU, the script times sk_dim's implementation and kornia's of each
operation the views use, side by side in one process:

- random resized crop + horizontal flip (``random_resized_crop_flip``; kornia's
  ``RandomResizedCrop`` then ``RandomHorizontalFlip``), CMC's crop scale;
- colour jitter of brightness, contrast and saturation by 0.4 for 80% of the images
  (``color_jitter``, CMC's; kornia's ``ColorJitter(0.4, 0.4, 0.4, 0, p=0.8)``);
- random grayscale of 25% of the images (``random_grayscale``; ``RandomGrayscale``);
- RGB -> CIELAB and RGB -> YCbCr (``rgb_to_lab``, ``rgb_to_ycbcr``;
  ``kornia.color.rgb_to_lab``, ``kornia.color.rgb_to_ycbcr``);
- CMC's view maker path: ``ColorViews("lab")`` in training mode (crop + flip, then the
  normalised L and ab views), against kornia's crop, flip and Lab with the same
  normalisation;
- DIM's augmentation path: ``ImageAugment()`` (crop + flip, jitter, grayscale), against
  the same chain of kornia's augmentations.

Every sample times as many calls as fill ``--sample-s`` seconds; ours and kornia's
samples alternate, ``--repeats`` of each, and the
median counts: the machine is shared and loaded, and medians of interleaved samples
keep a burst of load from favouring one side. ``ours / kornia`` is the ratio of the
two speeds measured in the same run (above 1: ours is faster). All calls run under
``torch.no_grad()``, as the views do in training.

The colour conversions' error is the maximum absolute difference, over 256 random
images plus the 8 corners of the RGB cube, between each float32 result and a float64
NumPy reference of the standards: sRGB (IEC 61966-2-1) to XYZ with the 7-digit matrix
derived from its primaries and the D65 white (0.95047, 1, 1.08883), CIELAB with CIE
15:2004's exact ``epsilon = 216/24389`` and ``kappa = 24389/27``; full-range BT.601
YCbCr (``Kr = 0.299``, ``Kb = 0.114``), chroma centred (kornia's +0.5 removed).
It needs kornia (``pip install kornia``; sk-dim itself does not depend on it). About
two minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import time
import warnings

import kornia
import kornia.augmentation as K
import numpy as np
import pandas as pd
import torch
from _protocol import report

from sk_dim.views import (
    AUGMENT_CROP_SCALE,
    CMC_CROP_SCALE,
    ColorViews,
    ImageAugment,
    color_jitter,
    random_grayscale,
    random_resized_crop_flip,
    rgb_to_lab,
    rgb_to_ycbcr,
)

SIZE = 32
JITTER, JITTER_P, GRAY_P = 0.4, 0.8, 0.25
RATIO = (3.0 / 4.0, 4.0 / 3.0)
# CMC's normalisation of L, a, b (sk_dim.views.color), applied to kornia's Lab as well.
LAB_CENTER = torch.tensor((50.0, (-86.183 + 98.233) / 2, (-107.857 + 94.478) / 2))
LAB_HALF = torch.tensor((50.0, (86.183 + 98.233) / 2, (107.857 + 94.478) / 2))


def kornia_crop_flip(scale):
    """kornia's random resized crop back to 32x32, then a random horizontal flip."""
    crop = K.RandomResizedCrop((SIZE, SIZE), scale=scale, ratio=RATIO)
    flip = K.RandomHorizontalFlip(p=0.5)
    return lambda x: flip(crop(x))


def kornia_lab_views(x, crop_flip):
    """CMC's two normalised Lab views, from kornia's crop, flip and Lab."""
    lab = kornia.color.rgb_to_lab(crop_flip(x))
    z = (lab - LAB_CENTER[:, None, None]) / LAB_HALF[:, None, None]
    return [z[:, :1].contiguous(), z[:, 1:].contiguous()]


def operations():
    """name -> (ours, kornia): callables of one (N, 3, 32, 32) batch."""
    cmc_views = ColorViews("lab", 1.0).train()
    dim_augment = ImageAugment()
    cmc_crop = kornia_crop_flip(CMC_CROP_SCALE)
    dim_crop = kornia_crop_flip(AUGMENT_CROP_SCALE)
    jitter = K.ColorJitter(JITTER, JITTER, JITTER, 0.0, p=JITTER_P)
    gray = K.RandomGrayscale(p=GRAY_P)
    return {
        "crop + flip": (
            lambda x: random_resized_crop_flip(x, SIZE, scale=CMC_CROP_SCALE),
            cmc_crop,
        ),
        "colour jitter": (lambda x: color_jitter(x, JITTER, JITTER_P), jitter),
        "random grayscale": (lambda x: random_grayscale(x, GRAY_P), gray),
        "RGB -> Lab": (rgb_to_lab, kornia.color.rgb_to_lab),
        "RGB -> YCbCr": (rgb_to_ycbcr, kornia.color.rgb_to_ycbcr),
        "CMC view maker (crop, flip, Lab views)": (
            cmc_views,
            lambda x: kornia_lab_views(x, cmc_crop),
        ),
        "DIM augmentation (crop, flip, jitter, gray)": (
            dim_augment,
            lambda x: gray(jitter(dim_crop(x))),
        ),
    }


def seconds_per_call(fn, x, sample_s):
    """Mean seconds per call of fn(x) over calls that fill at least sample_s seconds.

    Bounded by time rather than by a count calibrated beforehand: when the machine's
    load jumps, a sample still takes about sample_s, and the run its few minutes.
    """
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < sample_s:
        fn(x)
        calls += 1
    return elapsed / calls


def time_pair(ours, theirs, x, repeats, sample_s):
    """Median seconds per call of ours and theirs, from alternating samples."""
    for fn in (ours, theirs):
        fn(x)  # warm-up: first-call allocations and kornia's lazy set-up
    samples = ([], [])
    for _ in range(repeats):
        for side, fn in enumerate((ours, theirs)):
            samples[side].append(seconds_per_call(fn, x, sample_s))
    return statistics.median(samples[0]), statistics.median(samples[1])


# --------------------------------------------------------------- float64 references

SRGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
D65_WHITE = np.array([0.95047, 1.0, 1.08883])


def lab_reference(rgb):
    """CIELAB of (N, 3, H, W) sRGB in [0, 1], float64 NumPy."""
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    t = np.einsum("ij,njhw->nihw", SRGB_TO_XYZ, linear) / D65_WHITE[:, None, None]
    epsilon, kappa = 216 / 24389, 24389 / 27
    f = np.where(t > epsilon, np.cbrt(t), (kappa * t + 16) / 116)
    fx, fy, fz = f[:, 0], f[:, 1], f[:, 2]
    return np.stack((116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)), axis=1)


def ycbcr_reference(rgb):
    """Full-range BT.601 YCbCr of (N, 3, H, W) RGB in [0, 1], chroma centred on 0."""
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return np.stack((y, (b - y) / (2 * (1 - 0.114)), (r - y) / (2 * (1 - 0.299))), axis=1)


def conversion_errors():
    """{row name: (ours' max abs error, kornia's)} in float32, and kornia's in float64."""
    x = torch.rand(256, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    corners = torch.tensor(
        [(r, g, b) for r in (0.0, 1.0) for g in (0.0, 1.0) for b in (0.0, 1.0)]
    ).T.reshape(1, 3, 1, 8)
    chroma_offset = torch.tensor([0.0, 0.5, 0.5]).view(1, 3, 1, 1)
    functions = {
        "RGB -> Lab": (rgb_to_lab, kornia.color.rgb_to_lab, lab_reference),
        "RGB -> YCbCr": (
            rgb_to_ycbcr,
            lambda v: kornia.color.rgb_to_ycbcr(v) - chroma_offset.to(v.dtype),
            ycbcr_reference,
        ),
    }
    errors, kornia64 = {}, {}
    for name, (ours, theirs, reference) in functions.items():
        worst = [0.0, 0.0, 0.0]
        for batch in (x, corners):
            expected = reference(batch.double().numpy())
            for i, out in enumerate((ours(batch), theirs(batch), theirs(batch.double()))):
                worst[i] = max(worst[i], float(np.abs(out.double().numpy() - expected).max()))
        errors[name] = worst[:2]
        kornia64[name] = worst[2]
    return errors, kornia64


def kornia_import_seconds():
    """Seconds ``import kornia`` adds to a process that has imported torch (median of 3)."""
    code = (
        "import time, torch; t = time.perf_counter(); import kornia; print(time.perf_counter() - t)"
    )
    runs = [float(subprocess.check_output([sys.executable, "-c", code])) for _ in range(3)]
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ints = lambda s: [int(t) for t in s.split(",")]  # noqa: E731
    parser.add_argument("--threads", type=ints, default=[1, 2])
    parser.add_argument("--batches", type=ints, default=[128, 256])
    parser.add_argument("--repeats", type=int, default=9, help="samples of each side")
    parser.add_argument("--sample-s", type=float, default=0.1, help="seconds per sample")
    parser.add_argument("--results", default="views", help="results/NAME.md; 'none'")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning, module="kornia")

    load_before = os.getloadavg()[0]
    begin = time.perf_counter()
    errors, kornia64 = conversion_errors()
    rows = []
    torch.manual_seed(0)
    with torch.no_grad():
        for threads in args.threads:
            torch.set_num_threads(threads)
            for batch in args.batches:
                x = torch.rand(batch, 3, SIZE, SIZE)
                for name, (ours, theirs) in operations().items():
                    t_ours, t_theirs = time_pair(ours, theirs, x, args.repeats, args.sample_s)
                    error = errors.get(name, ("-", "-"))
                    rows.append(
                        {
                            "threads": threads,
                            "batch": batch,
                            "operation": name,
                            "ours img/s": round(batch / t_ours),
                            "kornia img/s": round(batch / t_theirs),
                            "ours / kornia": t_theirs / t_ours,
                            "ours max abs err": _format_error(error[0]),
                            "kornia max abs err": _format_error(error[1]),
                        }
                    )
                    print(
                        "  ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in rows[-1].items()),  # noqa: E501
                        flush=True,
                    )  # fmt: skip

    title = (
        f"Batched views, sk_dim against kornia {kornia.__version__} (torch "
        f"{torch.__version__}), 32x32 RGB float32 on the CPU"
    )
    notes = [
        f"- img/s: batch / median seconds per call over {args.repeats} interleaved samples "
        f"of each side (about {args.sample_s:g} s each), under `torch.no_grad()`; the "
        "machine is shared and loaded, so compare within a row: `ours / kornia` is the "
        "ratio of the two speeds measured side by side (above 1: ours faster)",
        "- max abs err: float32 result against a float64 NumPy reference of the standard "
        "(CIELAB per CIE 15:2004, exact epsilon and kappa, sRGB's 7-digit matrix and D65 "
        "white; full-range BT.601 YCbCr, chroma centred), over 256 random images and the "
        "RGB cube's corners; L in [0, 100], a and b within about [-108, 99]; Y in [0, 1], "
        "Cb and Cr in [-0.5, 0.5]",
        "- kornia's error is its constants', not float32's: in float64 it is "
        + ", ".join(f"{v:.2g} ({k})" for k, v in kornia64.items())
        + " (a 6-digit sRGB matrix, the rounded 0.008856 and 7.787 of CIELAB's linear "
        "segment, 0.564 and 0.713 for BT.601's 1/1.772 and 1/1.402)",
        "- crop + flip: CMC's scale (0.6, 1); the DIM path uses (0.3, 1); kornia's "
        "augmentations draw their own random numbers, so switching to them would change "
        "the augmentations a seed gives",
        "- colour jitter: kornia's ColorJitter also clamps to [0, 1] between steps, which "
        "DIM's raw-scale (0..255) pixels do not allow; kornia also offers hue jitter, "
        "which neither method's defaults use",
        f"- `import kornia` after torch: {kornia_import_seconds():.2f} s (median of 3)",
        "- with as many threads as cores on a loaded machine, a thread that waits for a "
        "core stalls the others at every parallel step: the 2-thread rows run far below "
        "the 1-thread ones here and their ratios are the noisiest; the 1-thread rows are "
        "the ones to read",
        f"- load average (1 min) before and after: {load_before:.1f}, "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; run took "
        f"{time.perf_counter() - begin:.0f} s",
    ]
    command = "python benchmarks/views.py " + shlex.join(sys.argv[1:])
    report(args.results, title, pd.DataFrame(rows), command, notes)


def _format_error(value):
    return value if isinstance(value, str) else f"{value:.2g}"


if __name__ == "__main__":
    main()
