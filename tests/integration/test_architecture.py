"""The package's layers point one way (README, "Layout"), checked from the source.

estimators (dim, cmc) -> shared estimator logic (_base) -> training (the only skorch code)
-> modules and views (torch) -> losses (pure torch); persistence, evaluation and
datasets sit beside them and use public names only.
"""

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "sk_dim"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join(base + ([target] if target else []))


def _imports() -> dict[str, set[tuple[str, str | None]]]:
    """Every sk_dim module's imports anywhere in its file: (module, imported name or None)."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        name = _module_name(path)
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {(alias.name, None) for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                source = (
                    _resolve(name, path.name == "__init__.py", node.level, node.module)
                    if node.level
                    else node.module
                )
                found |= {(source, alias.name) for alias in node.names}
        graph[name] = found
    return graph


GRAPH = _imports()


def _internal_edges(module: str) -> set[str]:
    edges = set()
    for source, name in GRAPH[module]:
        if not source.startswith("sk_dim"):
            continue
        # "from . import training" imports a module, not a name.
        edges.add(f"{source}.{name}" if f"{source}.{name}" in GRAPH else source)
    return edges - {module}


def test_the_import_graph_has_no_circle():
    # Package __init__ files only re-export: an edge into a package means its __init__.
    state: dict[str, int] = {}

    def visit(module, trail):
        if state.get(module) == 1:
            cycle = trail[trail.index(module) :] + [module]
            pytest.fail(f"import circle: {' -> '.join(cycle)}")
        if state.get(module) == 2:
            return
        state[module] = 1
        for target in _internal_edges(module):
            # A submodule importing its own package's __init__ is not a layer edge.
            if module.startswith(target + ".") and target in GRAPH:
                continue
            visit(target, trail + [module])
        state[module] = 2

    for module in GRAPH:
        visit(module, [])


LAYERS = {
    # module prefix: what it may import from sk_dim
    "sk_dim.losses": ("sk_dim.losses",),
    "sk_dim.views": ("sk_dim.views", "sk_dim.losses"),
    "sk_dim.modules": ("sk_dim.modules", "sk_dim.losses", "sk_dim.views"),
    "sk_dim.training": ("sk_dim.training", "sk_dim._runtime", "sk_dim._torch", "sk_dim._warn"),
    # Persistence sits above the estimators (as skops sits beside scikit-learn).
    "sk_dim.persistence": (
        "sk_dim.persistence",
        "sk_dim._torch",
        "sk_dim._version",
        "sk_dim._warn",
        "sk_dim.dim",
        "sk_dim.cmc",
    ),
    # The shared estimator logic reaches down only: never persistence or evaluation.
    "sk_dim._base": (
        "sk_dim.training",
        "sk_dim._fitting",
        "sk_dim._history",
        "sk_dim._input",
        "sk_dim._params",
        "sk_dim._presets",
        "sk_dim._runtime",
        "sk_dim._torch",
        "sk_dim._version",
        "sk_dim._warn",
        "sk_dim.modules",
        "sk_dim.views",
    ),
    # What X may be: checked, shaped and read in batches through the engine.
    "sk_dim._input": ("sk_dim.training", "sk_dim._shapes", "sk_dim.views"),
    "sk_dim._fitting": (
        "sk_dim.training",
        "sk_dim._input",
        "sk_dim._runtime",
        "sk_dim._torch",
        "sk_dim._version",
        "sk_dim._warn",
    ),
    "sk_dim._params": ("sk_dim._runtime",),
    "sk_dim._runtime": ("sk_dim._torch",),
    "sk_dim._history": (),
    "sk_dim._presets": (),
    "sk_dim._shapes": ("sk_dim.views",),  # the constant-column rule
    "sk_dim._version": (),
    "sk_dim._torch": (),
    # Docstring text only: the estimators import it, it imports nothing of sk_dim.
    "sk_dim._docs": (),
}


@pytest.mark.parametrize("layer", LAYERS)
def test_each_layer_imports_only_the_layers_below_it(layer):
    allowed = LAYERS[layer]
    for module in GRAPH:
        if module != layer and not module.startswith(layer + "."):
            continue
        for target in _internal_edges(module):
            assert target.startswith(allowed), f"{module} imports {target}"


@pytest.mark.parametrize("library", ["skorch", "sklearn"])
def test_torch_layers_import_neither_sklearn_nor_skorch(library):
    torch_only = [
        m for m in GRAPH if m.startswith(("sk_dim.losses", "sk_dim.modules", "sk_dim.views"))
    ]
    assert torch_only
    for module in torch_only:
        assert not any(source.startswith(library) for source, _ in GRAPH[module]), module


def test_skorch_is_imported_by_the_training_engine_only():
    users = {m for m in GRAPH if any(s.startswith("skorch") for s, _ in GRAPH[m])}
    assert users and all(m.startswith("sk_dim.training.") for m in users), users


def test_the_estimators_reach_batching_and_persistence_through_public_functions_only():
    # _base calls the engine's functions, which batch; persistence sits above it.
    for target in _internal_edges("sk_dim._base") | _internal_edges("sk_dim._fitting"):
        assert not target.startswith(("sk_dim.training.", "sk_dim.persistence")), target


def test_no_module_imports_another_modules_private_names():
    for module in GRAPH:
        for source, name in GRAPH[module]:
            if (
                source.startswith("sk_dim")
                and name
                and name.startswith("_")
                and name != "__version__"
            ):
                pytest.fail(f"{module} imports the private name {name} from {source}")


def test_the_readme_layout_names_only_files_that_exist():
    readme = (PACKAGE.parent / "README.md").read_text()
    layout = readme.split("## Layout\n", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`([\w/]+(?:\.py|/))`", layout))
    folders = {name for name in named if name.endswith("/") and name.count("/") == 1}
    assert {"losses/", "modules/", "views/"} <= folders
    for name in named:
        if name.startswith(("tests", "examples", "benchmarks", "docs")):
            assert (PACKAGE.parent / name).exists(), name
            continue
        # A bare file name is in sk_dim or in one of the folders the layout names.
        places = [PACKAGE, PACKAGE.parent] + [PACKAGE / folder for folder in folders]
        candidates = [place / name for place in places]
        assert any(path.exists() for path in candidates), f"README names {name}, not found"
    for path in PACKAGE.rglob("*.py"):
        if path.name != "__init__.py" and not path.name.startswith("_"):
            assert path.name in layout, f"README's layout does not mention {path.name}"
