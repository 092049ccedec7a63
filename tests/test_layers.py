"""The shape of the code: layers import one way, no import cycles, no module too long to read.

Layers, lowest first: `openrouter` (no Django, nothing of ours) → orweb's shared base (errors, money,
aio, Redis clients, the upstream client, SQL helpers) → `catalog` → `billing` → `gateway` → the apps on
top (`chat`, `batches`, …). A module may import its own layer and those below, never one above — not even inside a
function — and an app's templates (templates/<app>/) load template tags the same way. The project's wiring
(`orweb.urls`, `orweb.asgi`, settings, Celery, the dev stack) sits above everything.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = {"openrouter": 0, "orweb": 1, "catalog": 2, "billing": 3, "gateway": 4, "chat": 5, "batches": 5, "console": 5}
WIRING = {
    "orweb",  # the package itself: it loads the Celery app
    "orweb.urls",
    "orweb.asgi",
    "orweb.serve",
    "orweb.devstack",
    "orweb.settings",
    "orweb.celery",
    "orweb.schedules",
    "orweb.views",
    "orweb.health",
}
MAX_LINES = 500
LONG_ALLOWED = ("migrations", "openrouter/simulator")


def _modules() -> Iterator[tuple[str, Path]]:
    for package in LAYERS:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            yield ".".join(parts), path


MODULES = dict(_modules())


def _imports(module: str, path: Path) -> Iterator[str]:
    """Every module name `module` imports, wherever in the file (functions included)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                # `from package import module` imports the module; `from module import name`, the module.
                yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base


GRAPH = {
    module: {name for name in _imports(module, path) if name in MODULES and name != module}
    for module, path in MODULES.items()
}


def _layer(module: str) -> int | None:
    if module in WIRING or module.startswith("orweb.management"):
        return None
    return LAYERS[module.split(".")[0]]


def test_no_layer_imports_one_above_it():
    upward = [
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        for target in targets
        if _layer(module) is not None and (_layer(target) is None or _layer(target) > _layer(module))
    ]
    assert upward == []


def test_openrouter_needs_neither_django_nor_the_project():
    found = [
        f"{module} imports {name}"
        for module, path in MODULES.items()
        if module.startswith("openrouter")
        for name in _imports(module, path)
        if name.split(".")[0] in {"django", "channels", "celery", *LAYERS} - {"openrouter"}
    ]
    assert found == []


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in GRAPH[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in GRAPH:
        if module not in index:
            visit(module)
    return found


def test_there_are_no_import_cycles():
    assert _cycles() == []


def test_no_module_is_over_the_limit():
    long = [
        f"{path.relative_to(ROOT)}: {lines} lines"
        for path in sorted(ROOT.glob("*/**/*.py"))
        if ".venv" not in path.parts
        and ".data" not in path.parts
        and not any(part in path.relative_to(ROOT).as_posix() for part in LONG_ALLOWED)
        and (lines := len(path.read_text().splitlines())) > MAX_LINES
    ]
    assert long == []


LOAD = re.compile(r"{%\s*load\s+(.+?)\s*%}")
# Our template tag libraries by the name templates load them with ("console_alerts": its module).
LIBRARIES = {module.rpartition(".")[2]: module for module in MODULES if ".templatetags." in module}


def _upward_loads(path: Path, package: str) -> Iterator[str]:
    """Each tag library of a layer above `package` that the template at `path` loads."""
    for match in LOAD.finditer(path.read_text()):
        names = match.group(1).split()
        names = names[names.index("from") + 1 :] if "from" in names else names
        for name in names:
            module = LIBRARIES.get(name)
            if module and _layer(module) > LAYERS[package]:
                yield f"templates/{package}/{path.name} loads {module}"


def test_no_template_loads_tags_from_a_layer_above_it():
    upward = [
        found
        for package in LAYERS
        for path in sorted((ROOT / "templates" / package).rglob("*.html"))
        for found in _upward_loads(path, package)
    ]
    assert upward == []


def test_the_check_sees_a_template_loading_tags_from_above(tmp_path):
    page = tmp_path / "usage.html"
    page.write_text("{% load static %}<p>{% load console_alerts money %}{% anomaly_banner %}</p>")
    assert list(_upward_loads(page, "billing")) == [
        "templates/billing/usage.html loads console.templatetags.console_alerts"
    ]
    assert list(_upward_loads(page, "console")) == []


@pytest.mark.parametrize(
    ("source", "caught"),
    [
        ("from billing import ledger\n", "catalog.fake imports billing.ledger"),
        ("def f():\n    from chat import runner\n", "catalog.fake imports chat.runner"),
    ],
)
def test_the_check_sees_upward_imports_even_inside_functions(tmp_path, source, caught):
    fake = tmp_path / "fake.py"
    fake.write_text(source)
    targets = {name for name in _imports("catalog.fake", fake) if name in MODULES}
    assert [f"catalog.fake imports {t}" for t in targets if _layer(t) > _layer("catalog.fake")] == [caught]
