"""Memory of fit and transform on a uint8 image memmap larger than what they should hold.

    python benchmarks/memmap.py [--size-gb 2 --side 64 --batch-size 512 --threads 2
                                 --dir DIR --results memmap]

Writes ``--size-gb`` GB of uint8 ``--side`` x ``--side`` grayscale images to a
``numpy.memmap`` in a temporary folder (``--dir``; deleted afterwards): mosaics of
8x8 digits from scikit-learn, random ones per image, with uniform noise. The file
is written with plain file writes, a few MB at a time, so that the process only
maps it when sk_dim reads it. Then ``DeepInfoMaxTransformer`` (the MLP encoder on
the flattened images, ``layer="y"``, ``embedding_dim=16``) is fitted for one epoch
on the read-only memmap and transforms it.

Printed per phase (fit, transform) beside the idle process before them: wall
and CPU time, peak RSS (``VmHWM`` of ``/proc/self/status`` and ``ru_maxrss`` of
``getrusage``, both reset before each phase through ``/proc/self/clear_refs``) and
the peaks of ``RssAnon`` (anonymous memory: heap, copies) and ``RssFile`` (pages of
mapped files, the memmap included) sampled every 20 ms. Pages of the memmap that
the process has read count in its RSS (``RssFile``) although the kernel can drop
them at any time, so RssAnon is the figure that says whether a copy was made.

Target (issue 18): peak RSS above the idle process, minus transform's output,
below a quarter of the file size.
"""

import argparse
import os
import resource
import shlex
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _protocol import report
from sklearn.datasets import load_digits

from sk_dim import DeepInfoMaxTransformer

MB = 2**20
DIGIT = 8  # side of a digits image
CHUNK_ROWS = 2048  # rows generated and written at a time


def status() -> dict[str, int]:
    """The memory lines of /proc/self/status, in bytes."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if value.strip().endswith("kB"):
            fields[key] = int(value.split()[0]) * 1024
    return fields


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class Sampler:
    """Peaks of RssAnon and RssFile, sampled in a background thread."""

    def __init__(self, interval=0.02):
        self.interval = interval
        self.peaks = {"RssAnon": 0, "RssFile": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            fields = status()
            for key in self.peaks:
                self.peaks[key] = max(self.peaks[key], fields.get(key, 0))
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def write_images(path: Path, n_rows: int, side: int, seed: int = 0) -> None:
    """Mosaics of random digits with noise, written chunk by chunk (no mapping)."""
    # Digits 0..16 scaled to 0..224, plus noise 0..31: no uint8 overflow.
    digits = (load_digits().images * 14).astype(np.uint8)  # (1797, 8, 8)
    rng = np.random.default_rng(seed)
    tiles = side // DIGIT
    with open(path, "wb") as file:
        for start in range(0, n_rows, CHUNK_ROWS):
            n = min(CHUNK_ROWS, n_rows - start)
            picks = digits[rng.integers(len(digits), size=(n, tiles, tiles))]  # (n, t, t, 8, 8)
            images = picks.transpose(0, 1, 3, 2, 4).reshape(n, side, side)
            images += rng.integers(0, 32, size=images.shape, dtype=np.uint8)
            file.write(images.tobytes())


def measure(name, run, rows, baseline):
    """Run ``run()`` and record its wall time and memory peaks beside the idle ``baseline``."""
    reset = reset_peak()
    start, cpu = time.perf_counter(), time.process_time()
    with Sampler() as sampler:
        result = run()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    fields = status()
    # clear_refs resets ru_maxrss too (both read the same high-water mark).
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    rows.append(
        {
            "phase": name,
            "wall s": wall,
            "CPU s": cpu,
            "peak RSS MB": fields["VmHWM"] / MB if reset else float("nan"),
            "ru_maxrss MB": maxrss / MB,
            "peak RSS - idle MB": (fields["VmHWM"] - baseline["VmRSS"]) / MB
            if reset
            else float("nan"),
            "peak RssAnon - idle MB": (sampler.peaks["RssAnon"] - baseline["RssAnon"]) / MB,
            "peak RssFile MB": sampler.peaks["RssFile"] / MB,
            "RssAnon after MB": fields["RssAnon"] / MB,
        }
    )
    print(rows[-1], flush=True)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-gb", type=float, default=2.0, help="file size in GB (2**30)")
    parser.add_argument("--side", type=int, default=64, help="image side, a multiple of 8")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--dir", default=None, help="folder for the temporary file")
    parser.add_argument("--results", default="memmap", help="results/NAME.md; 'none': no file")
    args = parser.parse_args()
    if args.side % DIGIT:
        parser.error(f"--side must be a multiple of {DIGIT}")
    n_features = args.side * args.side
    n_rows = int(args.size_gb * 2**30) // n_features

    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        path = Path(folder) / "images.u8"
        start = time.perf_counter()
        write_images(path, n_rows, args.side)
        print(f"wrote {path.stat().st_size / MB:.0f} MB in {time.perf_counter() - start:.0f} s")
        X = np.memmap(path, dtype=np.uint8, mode="r", shape=(n_rows, n_features))
        dim = DeepInfoMaxTransformer(
            encoder="mlp",
            image_shape=None,  # the flattened images as vectors: the cheap MLP encoder
            layer="y",
            embedding_dim=16,
            max_epochs=1,
            batch_size=args.batch_size,
            n_threads=args.threads,
            random_state=0,
        )
        # Idle: torch initialised by a fit on 64 rows read from the memmap.
        DeepInfoMaxTransformer(**{**dim.get_params(), "batch_size": 32}).fit(X[:64])
        baseline = status()
        rows = []
        measure("fit, 1 epoch", lambda: dim.fit(X), rows, baseline)
        Z = measure("transform", lambda: dim.transform(X), rows, baseline)

    file_mb = n_rows * n_features / MB
    output_mb = Z.nbytes / MB
    table = pd.DataFrame(rows)
    worst = table["peak RSS - idle MB"].max()
    worst_anon = table["peak RssAnon - idle MB"].max()
    notes = [
        f"- file: {n_rows} x {n_features} uint8 ({args.side}x{args.side} images), "
        f"{file_mb:.0f} MB; transform's output {Z.shape} {Z.dtype}, {output_mb:.1f} MB",
        f"- idle process: RSS {baseline['VmRSS'] / MB:.0f} MB, "
        f"RssAnon {baseline['RssAnon'] / MB:.0f} MB",
        f"- peak RSS above idle, minus the output: {worst - output_mb:.0f} MB = "
        f"{(worst - output_mb) / file_mb:.2f} x the file (target < 0.25); "
        f"RssAnon alone: {worst_anon - output_mb:.0f} MB = "
        f"{(worst_anon - output_mb) / file_mb:.2f} x the file",
    ]
    title = (
        f"fit (1 epoch) and transform of a {file_mb:.0f} MB uint8 memmap: memory, "
        f"DIM (MLP encoder, layer y, batch_size={args.batch_size}), "
        f"torch threads={args.threads or 'default'}, {os.cpu_count()} CPUs"
    )
    command = "python benchmarks/memmap.py " + shlex.join(sys.argv[1:])
    report(args.results, title, table, command, notes)


if __name__ == "__main__":
    main()
