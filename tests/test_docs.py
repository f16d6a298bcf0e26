"""The documentation builds with warnings as errors and its quick start renders.

Slow (the build runs the gallery examples): ``make test-slow``. Needs the
``docs`` extra (``pip install -e ".[docs]"``) and, for the rendering check,
Debian's ``chromium`` (``apt-get install -y chromium``); skipped without them.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
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
    for page in ("index", "install", "quickstart", "user_guide", "api", "auto_examples/index"):
        assert (built_docs / f"{page}.html").is_file(), page
    api = (built_docs / "api.html").read_text(encoding="utf-8")
    for name in ("DeepInfoMaxTransformer", "CMCTransformer", "linear_probe", "load_cifar10"):
        assert name in api
    dim_page = built_docs / "gen_modules" / "sk_dim.DeepInfoMaxTransformer.html"
    assert 'id="sk_dim.DeepInfoMaxTransformer.fit"' in dim_page.read_text(encoding="utf-8")

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
