"""The floor plan (docs/architecture.md): imports run only downward through the data flow,
common -> sim -> perception -> planning -> cli, and the two simulator backends do not import each other."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# package -> its folder in the repository (pyproject.toml's package-dir)
FOLDERS = {"drivestack.common": "tools/common", "drivestack.cli": "tools/cli", "drivestack.sim": "sim",
           "drivestack.perception": "perception", "drivestack.planning": "planning"}  # fmt: skip
LAYERS = ["drivestack.common", "drivestack.sim", "drivestack.perception", "drivestack.planning", "drivestack.cli"]
APART = [("drivestack.sim.embedded", "drivestack.sim.carla")]  # siblings that must not import each other


def _layer(module: str) -> str | None:
    return next((layer for layer in LAYERS if module == layer or module.startswith(layer + ".")), None)


def imports_of(path: Path) -> list[str]:
    """Every module a file imports, at module level or inside functions."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    return names


def upward_imports(files: dict[str, Path]) -> list[str]:
    """'module -> imported' for each import that runs against the data flow."""
    wrong = []
    for module, path in files.items():
        own = LAYERS.index(_layer(module))
        for name in imports_of(path):
            if name.split(".")[0] in ("sim", "perception", "planning", "tools"):
                wrong.append(f"{module} -> {name} (import drivestack.{name} instead)")
            layer = _layer(name)
            if layer is not None and LAYERS.index(layer) > own:
                wrong.append(f"{module} -> {name}")
            for a, b in APART:
                if (module.startswith(a) and name.startswith(b)) or (module.startswith(b) and name.startswith(a)):
                    wrong.append(f"{module} -> {name}")
    return wrong


def package_files() -> dict[str, Path]:
    files = {}
    for package, folder in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            files[".".join((package, *parts)).removesuffix(".__init__")] = path
    return files


def test_imports_run_only_downward():
    assert upward_imports(package_files()) == []


def test_the_check_sees_an_upward_import(tmp_path):
    sim_file = tmp_path / "sim.py"
    sim_file.write_text("def f():\n    from drivestack.planning.control import WaypointController\n")
    old_style = tmp_path / "old.py"
    old_style.write_text("import tools.cli\n")
    backend = tmp_path / "backend.py"
    backend.write_text("from drivestack.sim.embedded.render import Renderer\n")
    wrong = upward_imports({"drivestack.sim.x": sim_file, "drivestack.planning.y": old_style, "drivestack.sim.carla.z": backend})
    assert wrong == ["drivestack.sim.x -> drivestack.planning.control", "drivestack.sim.x -> drivestack.planning.control.WaypointController",
                     "drivestack.planning.y -> tools.cli (import drivestack.tools.cli instead)",
                     "drivestack.sim.carla.z -> drivestack.sim.embedded.render", "drivestack.sim.carla.z -> drivestack.sim.embedded.render.Renderer"]  # fmt: skip


def test_every_package_folder_is_installed():
    """Each folder with an __init__.py is a package pyproject.toml lists (else a wheel would leave it out)."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {m for m, p in package_files().items() if p.name == "__init__.py"}
    assert found - listed == set()
