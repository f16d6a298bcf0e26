"""Sphinx configuration of the sk-dim documentation.

Build with ``make docs`` (or ``sphinx-build -W --keep-going -b html docs
docs/_build/html``). Nothing here downloads: the intersphinx inventories of
scikit-learn, PyTorch, skorch, NumPy and pandas are written by this file from
the short lists below (the names the docs and examples mention), and the gallery
examples use scikit-learn's bundled digits or synthetic images.
"""

import inspect
import os
import sys
import zlib
from importlib import import_module
from pathlib import Path

import sklearn.experimental.enable_halving_search_cv  # noqa: F401 (HalvingGridSearchCV below)

import sk_dim

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

# Examples run in one process, on a shared machine: keep torch to one thread
# (each example also asks for this) and make matplotlib headless.
os.environ.setdefault("MPLBACKEND", "agg")
os.environ.setdefault("OMP_NUM_THREADS", "1")

project = "sk-dim"
author = "sk-dim developers"
copyright = "sk-dim developers"
release = sk_dim.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "auto_examples/*.ipynb"]
default_role = "literal"

# -- API reference -----------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False

# -- Links to other projects, offline ----------------------------------------
# CI and the build machines have no internet, so intersphinx cannot fetch the
# projects' objects.inv. Instead this file writes small inventories itself:
# one entry per name below, pointing at the page each project's docs give that
# name (their URL schemes are stable). Only listed names become links, so a
# reference to anything else in these packages is an error (``nitpicky`` below)
# rather than a dead link: add the name here.
EXTERNAL = {
    "sklearn": (
        "scikit-learn",
        "https://scikit-learn.org/stable/",
        "modules/generated/{name}.html#{name}",
        [
            "sklearn.base.BaseEstimator",
            "sklearn.base.TransformerMixin",
            "sklearn.base.clone",
            "sklearn.datasets.load_digits",
            "sklearn.decomposition.PCA",
            "sklearn.feature_selection.mutual_info_regression",
            "sklearn.linear_model.LogisticRegression",
            "sklearn.manifold.TSNE",
            "sklearn.model_selection.GridSearchCV",
            "sklearn.model_selection.HalvingGridSearchCV",
            "sklearn.model_selection.StratifiedKFold",
            "sklearn.model_selection.cross_val_score",
            "sklearn.model_selection.train_test_split",
            "sklearn.neighbors.KNeighborsClassifier",
            "sklearn.neighbors.NearestNeighbors",
            "sklearn.neural_network.BernoulliRBM",
            "sklearn.neural_network.MLPClassifier",
            "sklearn.pipeline.Pipeline",
            "sklearn.pipeline.make_pipeline",
            "sklearn.preprocessing.MinMaxScaler",
            "sklearn.preprocessing.StandardScaler",
            "sklearn.svm.LinearSVC",
            "sklearn.utils.Bunch",
        ],
    ),
    "torch": (
        "PyTorch",
        "https://docs.pytorch.org/docs/stable/",
        "generated/{name}.html#{name}",
        [
            "torch.compile",
            "torch.manual_seed",
            "torch.nn.Module",
            "torch.nn.functional.pad",
            "torch.set_num_threads",
        ],
    ),
    "skorch": (
        "skorch",
        "https://skorch.readthedocs.io/en/stable/",
        "{page}.html#{name}",
        [
            "skorch.callbacks.Callback",
            "skorch.callbacks.Checkpoint",
            "skorch.callbacks.EarlyStopping",
            "skorch.callbacks.LRScheduler",
            "skorch.callbacks.TrainEndCheckpoint",
            "skorch.net.NeuralNet",
        ],
    ),
    "numpy": (
        "NumPy",
        "https://numpy.org/doc/stable/",
        "reference/generated/{name}.html#{name}",
        ["numpy.ndarray"],
    ),
    "pandas": (
        "pandas",
        "https://pandas.pydata.org/docs/",
        "reference/api/{name}.html#{name}",
        ["pandas.DataFrame"],
    ),
}


def _inventory_entry(name: str, page_template: str) -> str:
    """One line of a Sphinx v2 inventory for an importable ``name``."""
    module, _, attr = name.rpartition(".")
    role = "py:class" if inspect.isclass(getattr(import_module(module), attr)) else "py:function"
    # skorch documents each module on one page: skorch.callbacks -> callbacks.html
    page = module.split(".", 1)[1] if "." in module else module
    return f"{name} {role} 1 {page_template.format(name=name, page=page)} -"


def _write_inventories(folder: Path) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    mapping = {}
    for key, (project, url, page_template, names) in EXTERNAL.items():
        lines = [_inventory_entry(name, page_template) for name in names]
        header = (
            f"# Sphinx inventory version 2\n# Project: {project}\n# Version: stable\n"
            "# The remainder of this file is compressed using zlib.\n"
        )
        path = folder / f"{key}.inv"
        path.write_bytes(header.encode() + zlib.compress("\n".join(lines).encode() + b"\n"))
        mapping[key] = (url, str(path))
    return mapping


intersphinx_mapping = _write_inventories(HERE / "_build" / "inventories")

# Unresolved references to those packages fail the build; other unresolved
# names (private classes named in docstrings) render as code, as before.
nitpicky = True
nitpick_ignore_regex = [(r".*", r"(?!(sklearn|torch|skorch|numpy|pandas)\.).*")]

# -- Gallery -----------------------------------------------------------------
# Every ``plot_*.py`` example runs at each build (no placeholder thumbnails);
# each is sized to train in about a minute or less on one CPU core. They run in
# as many processes as ``sphinx-build -j`` asks for (``make docs``: 2).
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"__init__\.py|/_",
    "abort_on_example_error": True,
    "backreferences_dir": "gen_modules/backreferences",
    "doc_module": ("sk_dim",),
    "download_all_examples": False,
    "remove_config_comments": True,
    "plot_gallery": "True",
    "within_subsection_order": "FileNameSortKey",
    "parallel": True,
    "show_memory": False,
    "min_reported_time": 1,
    "write_computation_times": False,
}

# -- HTML --------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"sk-dim {release}"
html_static_path = ["_static"]
html_show_sourcelink = False
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "header_links_before_dropdown": 8,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars = {"install": [], "quickstart": [], "index": []}
html_context = {"default_mode": "light"}
