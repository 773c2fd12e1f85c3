"""The package's layering, read from the imports: a lower layer never imports a higher one."""

from __future__ import annotations

import ast
from pathlib import Path

import flairseg

LAYERS = {
    "errors": 0,
    "outputs": 0,
    "config": 0,
    "version": 0,
    "memory": 0,
    "cases": 0,
    "io": 1,
    "kaggle": 1,
    "volumes": 1,
    "dicom_pixels": 1,
    "sequences": 1,
    "preprocess": 1,
    "postprocess": 1,
    "metrics": 1,
    "figures": 1,
    "qc": 1,
    "provenance": 1,
    "html_report": 1,
    "model": 2,
    "losses": 2,
    "distributed": 2,
    "augment": 2,
    "data": 3,
    "checkpoint": 3,
    "inference": 3,
    "shape": 1,
    "association": 1,
    "train": 4,
    "predict": 4,
    "released_models": 4,
    "demo": 4,
    "evaluate": 4,
    "preprocess_tree": 4,
    "radiogenomics": 4,
    "export": 4,
    "cv": 4,
    "cli": 5,
    "__main__": 5,
}
TORCH_FREE = {name for name, layer in LAYERS.items() if layer <= 1}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_every_module_has_a_layer_and_respects_it() -> None:
    package = Path(flairseg.__file__).parent
    modules = {p.stem for p in package.glob("*.py")} - {"__init__"}
    assert "flairseg.predict" not in _imports(package / "train.py") and "flairseg.train" not in _imports(
        package / "predict.py"
    )
    assert modules <= set(LAYERS), f"give these modules a layer: {sorted(modules - set(LAYERS))}"
    for module in modules:
        imported = _imports(package / f"{module}.py")
        for name in imported:
            parts = name.split(".")
            if parts[0] == "flairseg" and len(parts) > 1 and parts[1] in LAYERS:
                assert LAYERS[parts[1]] <= LAYERS[module] or (parts[1] == module), (
                    f"{module} imports higher layer {parts[1]}"
                )
        if module in TORCH_FREE:
            assert not any(n.split(".")[0] == "torch" for n in imported), f"{module} must not import torch"


def test_no_module_imports_itself_through_others() -> None:
    """Imports between the package's modules form no circle (same-layer imports included)."""
    package = Path(flairseg.__file__).parent
    graph = {
        p.stem: {n.split(".")[1] for n in _imports(p) if n.startswith("flairseg.") and n.split(".")[1] in LAYERS}
        - {p.stem}
        for p in package.glob("*.py")
        if p.stem != "__init__"
    }
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import circle: {' -> '.join(path[path.index(module) :] + (module,))}"
        if module not in done:
            for imported in graph.get(module, ()):
                visit(imported, path + (module,))
            done.add(module)

    for module in graph:
        visit(module, ())
