"""Every code block of README.md and docs/*.rst runs, and raises no warning.

Python blocks (```` ```python ```` fences, ``.. code-block:: python`` and literal
``::`` blocks that parse as Python) run in page order in one namespace per page,
in a temporary working directory, under ``warnings.simplefilter("error")``: a
snippet that warns fails here, as it would surprise whoever copies it.

Long snippets run at reduced settings. ``REDUCED`` lists, per page, text
substitutions applied to the page's Python blocks before they run (fewer rows,
``max_epochs=1``, fewer folds or workers); each must match the page, so when a
snippet changes its reduction has to be updated with it. The snippets as written
are what users run, with the time to expect on 2 CPU cores in a comment beside
the long ones. ``SETUP`` defines the names a page assumes (stated in a comment
in its snippet), ``CHECKS`` adds assertions after a page. The data a page reads
is made here: ``~`` is a temporary home holding a small fake CIFAR-10 in
``~/data`` (also ``$SK_DIM_DATA``), and ``images.npy`` holds digits.

Blocks that need a dask cluster or Accelerate are marked slow (``make
test-slow``); the fast test runs the rest of their page.

Shell blocks are not run: the ``make`` targets they name must exist, and the
scripts they run must exist and accept the options given. Other literal blocks
(formulas, signatures) are listed in ``NOT_CODE``.
"""

from __future__ import annotations

import ast
import gc
import pickle
import re
import shlex
import warnings
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = ["README.md", *sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.rst"))]

DIGITS_150 = "X, y = load_digits(return_X_y=True)\nX, y = X[:150], y[:150]"
ONE_EPOCH = (
    "DeepInfoMaxTransformer(random_state=0)",
    "DeepInfoMaxTransformer(random_state=0, max_epochs=1)",
)
REDUCED = {
    "README.md": [
        ("X, y = load_digits(return_X_y=True)", DIGITS_150),
        ONE_EPOCH,
        (
            "CMCTransformer(random_state=0)",
            "CMCTransformer(random_state=0, max_epochs=1, n_negatives=16, batch_size=32)",
        ),
        ("X[:10000]", "X[:64]"),
    ],
    "docs/index.rst": [
        ("X, y = load_digits(return_X_y=True)", DIGITS_150),
        ("DeepInfoMaxTransformer()", "DeepInfoMaxTransformer(max_epochs=1)"),
    ],
    "docs/quickstart.rst": [
        ("X, y = load_digits(return_X_y=True)", DIGITS_150),
        ONE_EPOCH,
        ("cv=5", "cv=2"),
        ("cv=3", "cv=2"),
        ("max_epochs=10", "max_epochs=1"),
    ],
    "docs/evaluation.rst": [
        ("X, y = load_digits(return_X_y=True)", DIGITS_150),
        ("max_epochs=10", "max_epochs=1"),
    ],
    "docs/user_guide.rst": [
        ("X, y = load_digits(return_X_y=True)", DIGITS_150),
        ("max_epochs=20", "max_epochs=2"),
    ],
    "docs/scaling.rst": [
        ("X, y = load_digits(return_X_y=True)", DIGITS_150),
        ONE_EPOCH,
        (
            "LocalCluster(n_workers=4, threads_per_worker=1)",
            'LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0")',
        ),
        ("n_jobs=-1,", "n_jobs=-1, cv=2,"),
        # 3 candidates: 1 epoch each, then the best for 3 epochs.
        ('"dim__beta": [0.5, 1.0, 2.0]', '"dim__beta": [1.0]'),
        ('"dim__gamma": [0.0, 0.1, 0.5]', '"dim__gamma": [0.0]'),
        ("max_resources=27, factor=3", "max_resources=3, factor=3, cv=2"),
        ('"clf__C": [0.1, 1.0, 10.0]', '"clf__C": [1.0]'),
        ("GridSearchCV(pipe, grid, cv=3)", "GridSearchCV(pipe, grid, cv=2)"),
        ('da.from_zarr("images.zarr")', 'da.from_array(np.load("images.npy"), chunks=(64, 64))'),
        # The scheduler's HTTP server on a free port: 8787 may be taken on a shared machine.
        ('memory_limit="4GB"', 'memory_limit="4GB", dashboard_address=":0"'),
        ("for epoch in range(5):", "for epoch in range(1):"),
        ('"mixed_precision": "bf16"', '"cpu": True'),
    ],
}
DIGITS_SETUP = """
from sklearn.datasets import load_digits
X, y = load_digits(return_X_y=True)
X, y = X[:150], y[:150]
"""
SETUP = {
    # The deployment page's snippets assume a data set X, y and new rows X_new.
    "docs/deployment.rst": DIGITS_SETUP + "X_new = X[:5]\n",
    "docs/persistence.rst": """
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sk_dim import DeepInfoMaxTransformer

X, y = load_digits(return_X_y=True)
X, y = X[:150], y[:150]
dim = DeepInfoMaxTransformer(max_epochs=1, random_state=0).fit(X)
pipe = make_pipeline(
    DeepInfoMaxTransformer(max_epochs=1, random_state=0),
    StandardScaler(),
    LogisticRegression(max_iter=1000),
).fit(X, y)
""",
}
CHECKS = {
    # The encoder of the snippet honours the contract: it trains and transforms.
    "docs/custom_encoder.rst": """
from sklearn.datasets import load_digits
Z = dim.set_params(max_epochs=1).fit_transform(load_digits().data[:64])
assert Z.shape[0] == 64
""",
    "docs/quickstart.rst": "assert set(grid.best_params_) == {'dim__alpha', 'dim__beta'}",
    "docs/persistence.rst": "assert pipe.score(X, y) > 0.1 and dim.transform(X[:2]).shape[0] == 2",
    "docs/datasets.rst": "assert X.shape == (100, 3072) and X.dtype.name == 'uint8'",
}
# Blocks that start a dask cluster or an Accelerate run: slow tests only.
SLOW_MARKERS = ("LocalCluster(", "accelerate=")
# Literal blocks that are neither Python nor shell commands.
NOT_CODE = {
    "docs/custom_encoder.rst": ["forward(x: Tensor (N, C, H, W) or (N, F))"],
    "docs/user_guide.rst": ["alpha * global MI(X; y) + beta * local MI(M; y)"],
}
SHELL_LANGUAGES = ("bash", "sh", "shell", "console")
SHELL_COMMANDS = {
    "make",
    "python",
    "pip",
    "sudo",
    "taskset",
    "accelerate",
    "torchrun",
    "sphinx-build",
}


def blocks(page: str) -> list[tuple[str, int, str]]:
    """(language, line, code) of every code block of a page, in order."""
    text = (ROOT / page).read_text(encoding="utf-8")
    if page.endswith(".md"):
        found = []
        for match in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M):
            line = text[: match.start()].count("\n") + 1
            found.append((match.group(1) or "text", line, match.group(2)))
        return found
    lines = text.split("\n")
    found, i = [], 0
    while i < len(lines):
        line = lines[i]
        directive = re.match(r"^(\s*)\.\. code-block::\s*(\w+)", line)
        literal = (
            not directive and line.rstrip().endswith("::") and not line.lstrip().startswith("..")
        )
        if not (directive or literal):
            i += 1
            continue
        indent = len(line) - len(line.lstrip())
        j = i + 1
        while j < len(lines) and re.match(r"^\s+:[\w-]+:", lines[j]):  # directive options
            j += 1
        body = []
        while j < len(lines) and (
            not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent
        ):
            body.append(lines[j])
            j += 1
        code = list(body)
        while code and not code[-1].strip():
            code.pop()
        while code and not code[0].strip():
            code.pop(0)
        if code:
            margin = min(len(c) - len(c.lstrip()) for c in code if c.strip())
            source = "\n".join(c[margin:] for c in code) + "\n"
            found.append((directive.group(2) if directive else "literal", i + 1, source))
        i = j
    return found


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def is_python(language: str, code: str) -> bool:
    if language == "python":
        return True
    if language != "literal":
        return False
    try:
        ast.parse(code)
    except SyntaxError:
        return False
    return True


def python_blocks(page: str) -> list[tuple[int, str]]:
    return [(line, code) for language, line, code in blocks(page) if is_python(language, code)]


def reduced(page: str, code: str) -> str:
    for old, new in REDUCED.get(page, []):
        code = code.replace(old, new)
    return code


def write_fake_cifar10(folder: Path, n: int = 20) -> None:
    """The official python batches, n random images each: 5 x n training rows."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        batch = {
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"labels": rng.integers(0, 10, n).tolist(),
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A temporary home and working directory holding the data the snippets read."""
    import matplotlib
    from sklearn.datasets import load_digits

    matplotlib.use("agg")
    write_fake_cifar10(tmp_path / "data" / "cifar-10-batches-py")
    np.save(tmp_path / "images.npy", load_digits().data[:128].astype(np.uint8))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SK_DIM_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_page(page: str, *, slow: bool) -> None:
    namespace = {"__name__": "__doc_snippet__"}
    sources = [(0, SETUP[page])] if page in SETUP else []
    for line, code in python_blocks(page):
        if slow or not any(marker in code for marker in SLOW_MARKERS):
            sources.append((line, reduced(page, code)))
    if page in CHECKS:
        sources.append((-1, CHECKS[page]))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for line, source in sources:
                try:
                    exec(compile(source, f"{page}:{line}", "exec"), namespace)
                except Exception as exc:
                    raise AssertionError(f"{page}, block at line {line} failed:\n{source}") from exc
    finally:
        _close(namespace)


def _close(namespace: dict) -> None:
    """Close what the snippets opened: dask clients and clusters, figures."""
    try:
        from distributed import Client
    except ImportError:
        Client = None  # noqa: N806
    for value in namespace.values():
        if Client is not None and isinstance(value, Client):
            cluster = value.cluster
            value.close()
            if cluster is not None:
                cluster.close()
    if "matplotlib.pyplot" in __import__("sys").modules:
        import matplotlib.pyplot as plt

        plt.close("all")
    gc.collect()


def test_every_block_is_known():
    """Each block is Python (run below), shell (checked below) or listed in NOT_CODE."""
    for page in PAGES:
        for language, line, code in blocks(page):
            if is_python(language, code) or language in SHELL_LANGUAGES:
                continue
            if language == "literal" and _is_shell(code):
                continue
            assert any(code.startswith(start) for start in NOT_CODE.get(page, ())), (
                f"{page}:{line}: a {language} block that is neither Python nor shell:\n{code}"
            )


def test_reductions_match_their_pages():
    """Every substitution applies to its page, so none is silently stale."""
    for page, substitutions in REDUCED.items():
        text = "".join(code for _, code in python_blocks(page))
        for old, _ in substitutions:
            assert old in text, f"{page}: REDUCED substitution {old!r} matches no snippet"


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)])
def test_python_blocks_run_without_warnings(page, sandbox):
    run_page(page, slow=False)


SLOW_PAGES = [
    p for p in PAGES if any(m in code for _, code in python_blocks(p) for m in SLOW_MARKERS)
]


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("page", SLOW_PAGES)
def test_python_blocks_with_clusters_run_without_warnings(page, sandbox):
    pytest.importorskip("distributed")
    pytest.importorskip("dask_ml")
    pytest.importorskip("accelerate")
    run_page(page, slow=True)


def _is_shell(code: str) -> bool:
    """A literal block of shell commands: its first word (after VAR=value) is a command."""
    first = next((w for w in code.split() if not re.match(r"^[A-Z_]+=", w)), "")
    return first in SHELL_COMMANDS


def _commands(code: str):
    """Each shell command of a block as a list of words, comments and line joins removed."""
    code = code.replace("\\\n", " ")
    for line in code.splitlines():
        line = line.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        for part in re.split(r"&&|;", line):
            words = shlex.split(part)
            while words and re.match(r"^[A-Z_]+=", words[0]):  # VAR=value prefixes
                words.pop(0)
            if words:
                yield words


def test_shell_blocks_name_existing_targets_scripts_and_options():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([\w-]+):", makefile, re.M))
    for page in PAGES:
        for language, line, code in blocks(page):
            if not (language in SHELL_LANGUAGES or (language == "literal" and _is_shell(code))):
                continue
            for words in _commands(code):
                where = f"{page}:{line}: {' '.join(words)}"
                if words[0] == "taskset":
                    words = words[2:]
                if words[0] == "make":
                    assert set(words[1:]) <= targets, where
                elif words[0] == "python" and words[1].startswith(("benchmarks/", "examples/")):
                    script = ROOT / words[1]
                    assert script.is_file(), where
                    source = script.read_text() + (ROOT / "benchmarks" / "_protocol.py").read_text()
                    for option in (w.split("=")[0] for w in words[2:] if w.startswith("--")):
                        assert f'"{option}"' in source, f"{where}: {option} is not an option"
