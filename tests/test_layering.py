"""The package's layering (README, "Layout"): a module imports only from layers below it, never sideways between
training, evaluation and conversion, and there is no import cycle."""

import ast
from pathlib import Path


PACKAGE = Path(__file__).resolve().parents[1] / "maskspec_hf"
# Layer of each top-level module or sub-package; equal layers may not import each other (except within a package).
LAYERS = {
    "configuration_maskspec": 1, "modeling_maskspec": 1, "feature_extraction_maskspec": 1,
    "audio": 2, "loading": 3, "hub": 3, "model_card": 3, "pipeline": 3, "data": 4,
    "training": 5, "evaluation": 5, "conversion": 5, "cli": 6,
}  # fmt: skip
CORE = ("configuration_maskspec", "modeling_maskspec", "feature_extraction_maskspec")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """{module: the maskspec_hf modules it imports (at any depth of its code)}."""
    edges = {}
    for path in PACKAGE.rglob("*.py"):
        name = _module_name(path)
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                names = [target] if node.module else [f"{target}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            edges.setdefault(name, set()).update(n for n in names if n.startswith("maskspec_hf"))
    return edges


def _layer(module: str) -> float:
    parts = module.split(".")
    if len(parts) == 1:
        return 7  # maskspec_hf/__init__.py re-exports
    if parts[1] == "evaluation" and len(parts) > 2 and parts[2] == "metrics":
        return 4.5  # plain metric functions, used by training and evaluation alike
    return LAYERS[parts[1]]


def test_every_module_has_a_layer():
    tops = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir() if p.suffix == ".py" or p.is_dir()}
    tops -= {"__init__", "__pycache__"}
    assert tops <= set(LAYERS), sorted(tops - set(LAYERS))


def test_imports_point_down_only():
    wrong = []
    for module, targets in _imports().items():
        for target in targets:
            if target == module or target.startswith(module + ".") or module.startswith(target + "."):
                continue
            same_package = module.split(".")[:2] == target.split(".")[:2]
            both_core = module.split(".")[-1] in CORE and target.split(".")[1] in CORE
            if not (same_package or both_core) and _layer(target) >= _layer(module):
                wrong.append(f"{module} -> {target}")
    assert not wrong, wrong


def test_the_core_imports_nothing_else_of_the_package():
    # Saved folders carry the three core files as remote code: they may import each other only.
    for module, targets in _imports().items():
        if module.split(".")[-1] in CORE:
            assert all(t.split(".")[1] in CORE for t in targets), (module, targets)


def test_there_is_no_import_cycle():
    edges = _imports()
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in edges.get(module, ()):
            if target not in edges:
                continue
            assert state.get(target) != 1, " -> ".join(path + [target])
            if target not in state:
                visit(target, path + [target])
        state[module] = 2

    for module in edges:
        if module not in state:
            visit(module, [module])
