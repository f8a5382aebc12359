"""The figures of the code's shape: app modules, the largest ones, two-way app edges, excused imports,
function-level imports of the project's apps, and (where the `duplicates` command exists) repeated blocks.

Run from anywhere: `python scripts/architecture_figures.py [CHECKOUT]`. It reads files only, so it can measure
an older checkout (e.g. a `git worktree`) beside the current one.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

APPS = ("core", "gallery", "search", "duplicates", "pipeline", "worker", "imgsim_site")
LARGE_MODULE_LINES = 600
# Lowest first, as in the layering contract of pyproject.toml; an app may use only those before it.
LAYERS = ("core", "gallery", "worker", "search", "duplicates", "pipeline")


def _app_modules(root: Path) -> list[Path]:
    return sorted(
        path
        for app in APPS
        if (root / app).is_dir()
        for path in (root / app).rglob("*.py")
        if "migrations" not in path.parts and path.name != "__init__.py"
    )


def _imported_modules(node: ast.AST) -> list[str]:
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        return [node.module]
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    return []


def _own_app(module: str) -> str | None:
    top = module.split(".")[0]
    return top if top in APPS else None


def _template_edges(root: Path) -> list[str]:
    """Templates of one app that load a higher app's tag library: imports the linter cannot see."""
    library_app = {
        path.stem: path.relative_to(root).parts[0]
        for app in APPS
        for path in (root / app).glob("templatetags/*.py")
        if path.name != "__init__.py"
    }
    edges = []
    for template in sorted((root / "templates").rglob("*.html")):
        app = template.relative_to(root / "templates").parts[0]
        for loaded in re.findall(r"{%\s*load\s+([\w ]+?)\s*%}", template.read_text()):
            for library in loaded.split():
                owner = library_app.get(library)
                if owner in LAYERS and app in LAYERS and LAYERS.index(owner) > LAYERS.index(app):
                    edges.append(f"{template.relative_to(root)} loads {library} ({owner})")
    return edges


def main(root: Path) -> None:
    """Print one line per figure."""
    modules = _app_modules(root)
    sizes = sorted(((len(path.read_text().splitlines()), path.relative_to(root)) for path in modules), reverse=True)
    edges: set[tuple[str, str]] = set()
    function_level = []
    for path in modules:
        app = path.relative_to(root).parts[0]
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            for module in _imported_modules(node):
                target = _own_app(module)
                if target and target != app:
                    edges.add((app, target))
        for function in ast.walk(tree):
            if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef) and function.name != "ready":
                for node in ast.walk(function):
                    function_level += [f"{path.relative_to(root)}: {m}" for m in _imported_modules(node) if _own_app(m)]
    two_way = sorted({tuple(sorted(edge)) for edge in edges if (edge[1], edge[0]) in edges})
    contracts = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    excused = sum(len(contract.get("ignore_imports", [])) for contract in contracts)

    print(f"app modules (migrations and __init__ aside): {len(modules)}")
    print(f"largest module: {sizes[0][1]} ({sizes[0][0]} lines)")
    print(f"modules over {LARGE_MODULE_LINES} lines: {sum(1 for lines, _ in sizes if lines > LARGE_MODULE_LINES)}")
    print(f"two-way app edges: {len(two_way)} {two_way}")
    print(f"excused imports in the layering contract: {excused}")
    print(f"function-level imports of the project's apps (AppConfig.ready aside): {len(function_level)}")
    for line in function_level:
        print(f"    {line}")
    template_edges = _template_edges(root)
    print(f"templates loading a higher app's tags: {len(template_edges)}")
    for line in template_edges:
        print(f"    {line}")
    if shutil.which("duplicates"):
        found = subprocess.run(
            ["duplicates", "--repo", str(root), "--seconds", "120"], capture_output=True, text=True, check=False
        )
        print(f"duplicates: {found.stdout.splitlines()[0] if found.stdout else found.stderr.strip()}")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else Path(__file__).resolve().parents[1])
