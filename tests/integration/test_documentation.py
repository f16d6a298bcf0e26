"""The documentation builds with warnings as errors and its quick start renders.

The full build is slow (it runs the gallery examples): ``make test-slow``, and
CI runs ``make docs`` after the tests. It needs the ``docs`` extra
(``pip install -e ".[docs]"``) and, for the rendering check, Debian's
``chromium`` (``apt-get install -y chromium``); skipped without them. The
configuration checks are fast and need neither.
"""

import os
import re
import runpy
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


EXTERNAL = r"(?:sklearn|torch|skorch|numpy|pandas)\.[\w.]*\w"
# ``:class:`~sklearn.svm.LinearSVC``` and the like, and numpydoc See Also entries.
ROLE_REFERENCE = re.compile(rf":(?:class|func|meth|obj|attr|exc):`~?({EXTERNAL})`")
SEE_ALSO_ENTRY = re.compile(rf"^\s+({EXTERNAL})\s*:", re.MULTILINE)


def _conf(tmp_path):
    """The namespace of docs/conf.py, run from a copy (it writes its inventories beside it)."""
    shutil.copy(ROOT / "docs" / "conf.py", tmp_path / "conf.py")
    return runpy.run_path(str(tmp_path / "conf.py"))


def _inventory_names(path):
    lines = Path(path).read_bytes().split(b"\n", 4)
    assert lines[0] == b"# Sphinx inventory version 2", lines[0]
    return {line.split()[0] for line in zlib.decompress(lines[4]).decode().splitlines() if line}


def test_docs_config_runs_every_example_and_resolves_links_offline(tmp_path):
    conf = _conf(tmp_path)
    gallery = conf["sphinx_gallery_conf"]
    examples = sorted((ROOT / "examples").glob("*.py"))
    assert examples
    for example in examples:
        # sphinx-gallery matches the pattern against the example's full path.
        assert re.search(gallery["filename_pattern"], str(example)), example.name

    # Inventories are local files, so the build downloads nothing.
    inventories = set()
    for url, location in conf["intersphinx_mapping"].values():
        assert url.startswith("https://") and Path(location).is_file(), (url, location)
        inventories |= _inventory_names(location)

    # Every name of those packages that the docs or docstrings link to has an
    # entry (the build also fails on one without: nitpicky).
    texts = [*(ROOT / "docs").glob("*.rst"), *(ROOT / "sk_dim").rglob("*.py")]
    referenced = set()
    for path in texts:
        text = path.read_text(encoding="utf-8")
        referenced |= set(ROLE_REFERENCE.findall(text))
        if path.suffix == ".py":
            for section in re.findall(r"See Also\n\s*-+\n(.*?)(?:\n\s*\n)", text, re.S):
                referenced |= set(SEE_ALSO_ENTRY.findall("\n" + section))
    assert "sklearn.neural_network.MLPClassifier" in referenced  # the scan finds See Also
    assert referenced <= inventories, sorted(referenced - inventories)


def _chromium(args, tmp_path, timeout=120):
    profile = tmp_path / "chromium-profile"
    cmd = [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)


def _build_docs(tmp_path):
    """Build a copy of docs/ and examples/ (the build writes into its source folder)."""
    for module in ("sphinx", "numpydoc", "sphinx_gallery", "pydata_sphinx_theme"):
        pytest.importorskip(module, reason=f"{module} is not installed (the docs extra)")
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("_build", "auto_examples", "gen_modules", "__pycache__")
    shutil.copytree(ROOT / "docs", src / "docs", ignore=ignore)
    shutil.copytree(ROOT / "examples", src / "examples", ignore=ignore)
    html = tmp_path / "html"
    env = {**os.environ, "MPLBACKEND": "agg", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html"]
    cmd += ["-d", str(tmp_path / "doctrees"), str(src / "docs"), str(html)]
    result = subprocess.run(cmd, cwd=src, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return html


@pytest.mark.slow
def test_docs_build_and_quickstart_renders(tmp_path):
    # One test, one build: under pytest-xdist two tests could build at once.
    built_docs = _build_docs(tmp_path)
    pages = ("index", "install", "quickstart", "user_guide", "scaling", "api")
    for page in (*pages, "auto_examples/index"):
        assert (built_docs / f"{page}.html").is_file(), page
    api = (built_docs / "api.html").read_text(encoding="utf-8")
    for name in ("DeepInfoMaxTransformer", "CMCTransformer", "linear_probe", "load_cifar10"):
        assert name in api
    dim_page = (built_docs / "gen_modules" / "sk_dim.DeepInfoMaxTransformer.html").read_text(
        encoding="utf-8"
    )
    # Its own methods and those inherited from scikit-learn.
    for method in ("fit", "transform", "fit_transform", "get_params", "set_params", "set_output"):
        assert f'id="sk_dim.DeepInfoMaxTransformer.{method}"' in dim_page, method
    assert 'id="sk_dim.DeepInfoMaxTransformer.get_feature_names_out"' in dim_page
    # See Also links to scikit-learn resolve (offline inventory), to its own page.
    probe_page = (built_docs / "gen_modules" / "sk_dim.evaluation.MLPProbe.html").read_text(
        encoding="utf-8"
    )
    assert (
        'href="https://scikit-learn.org/stable/modules/generated/'
        "sklearn.neural_network.MLPClassifier.html" in probe_page
    )
    # Every example ran: its page shows a figure it drew, not a placeholder.
    for example in sorted((ROOT / "examples").glob("plot_*.py")):
        page = (built_docs / "auto_examples" / f"{example.stem}.html").read_text(encoding="utf-8")
        figure = f"sphx_glr_{example.stem}_001.png"
        assert figure in page, example.name
        assert (built_docs / "_images" / figure).is_file(), figure
    # One navigation entry for GPUs and scaling out.
    index = (built_docs / "index.html").read_text(encoding="utf-8")
    assert "GPUs and scaling out" in index and "GPU and scale-out" not in index
    assert (built_docs / "benchmarks.html").is_file()

    if not CHROMIUM.is_file():
        pytest.skip("/usr/bin/chromium is not installed (apt-get install -y chromium)")
    url = (built_docs / "quickstart.html").as_uri()
    dom = _chromium(["--dump-dom", url], tmp_path).stdout

    # The gallery figure and the gallery thumbnails are images in the page.
    images = re.findall(r"<img\b[^>]*\bsrc=\"([^\"]+)\"", dom)
    assert any("sphx_glr_plot_tsne_digits_001" in src for src in images), images
    assert any("thumb" in src for src in images), images
    for src in images:
        if not src.startswith(("http:", "https:", "data:")):
            assert (built_docs / src.split("#")[0]).is_file(), src
    # The API summary table links the main classes to their pages.
    table = re.search(r"<table[^>]*autosummary.*?</table>", dom, flags=re.S)
    assert table is not None, "no autosummary table in the quick start"
    assert "gen_modules/sk_dim.DeepInfoMaxTransformer.html" in table.group(0)
    assert "gen_modules/sk_dim.CMCTransformer.html" in table.group(0)

    shot = tmp_path / "quickstart.png"
    _chromium([f"--screenshot={shot}", "--window-size=1280,2000", url], tmp_path)
    assert shot.is_file() and shot.stat().st_size > 10_000


def test_html_repr_links_to_each_estimators_api_page():
    import tomllib

    from sk_dim import CMCTransformer, DeepInfoMaxTransformer
    from sk_dim._version import DOCS_URL

    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"].get("urls", {})
    # Until the documentation is published, DOCS_URL may be empty: then no link at all.
    assert urls.get("Documentation", "") == DOCS_URL
    api = (ROOT / "docs" / "api.rst").read_text()

    def check_link(estimator, page):
        html = estimator._repr_html_()
        if DOCS_URL:
            assert f'href="{DOCS_URL}{page}"' in html
        else:
            assert "gen_modules/" not in html and "readthedocs" not in html

    for estimator in (DeepInfoMaxTransformer(), CMCTransformer()):
        check_link(estimator, f"gen_modules/sk_dim.{type(estimator).__name__}.html")
        # autosummary writes that page for every name listed under currentmodule sk_dim.
        assert f"   {type(estimator).__name__}\n" in api.split(".. currentmodule:: sk_dim\n")[1]
    from sk_dim.evaluation import FineTunedClassifier, MLPProbe

    for estimator in (MLPProbe(), FineTunedClassifier(DeepInfoMaxTransformer())):
        name = type(estimator).__name__
        check_link(estimator, f"gen_modules/sk_dim.evaluation.{name}.html")
        assert f"   {name}\n" in api.split(".. currentmodule:: sk_dim.evaluation\n")[1]
