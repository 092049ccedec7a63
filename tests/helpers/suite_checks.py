"""Checks over the whole suite, which `make test` enforces: every template is rendered by some test, and
every line of the money code runs (the files listed in pyproject's `[tool.coverage.run] include`).

They apply only when the whole suite ran: a run of some tests (`-k`, a path, `--lf`) says nothing about
either, and a run stopped early has already failed. Templates count when Django renders them in a test
process (pytest-django's test environment sends `template_rendered`, for `{% include %}`d partials too);
a template rendered only by a server in a subprocess does not. The coverage check needs pytest-cov
(`devstack test` starts it); under a plain `pytest` it is skipped.

On pytest-xdist (tests/helpers/workers.py) the checks run on the controller, once the run is over: each
worker hands it what it rendered and deselected, and pytest-cov has combined the workers' coverage.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from pathlib import Path
from typing import Any

import pytest
from django.test.signals import template_rendered

ROOT = Path(__file__).resolve().parents[2]
# What a worker hands the controller in its `workeroutput`.
RENDERED, DESELECTED = "orweb_rendered", "orweb_deselected"


def whole_suite(config: pytest.Config, deselected: int) -> bool:
    """True when the run selected every test: no paths narrower than tests/, no -k/-m, none deselected."""
    option = config.option
    if option.keyword or option.markexpr or option.collectonly or deselected:
        return False
    base, root = config.invocation_params.dir, config.rootpath
    return all("::" not in arg and (base / arg).resolve() in {root, root / "tests"} for arg in config.args)


def project_template_files() -> set[Path]:
    """Every file under the project's template directories: settings' DIRS and each of our apps'
    `templates/` (Django's and other libraries' templates are theirs to test). None without Django."""
    from django.apps import apps
    from django.conf import settings

    if not settings.configured:
        return set()
    dirs = [Path(d) for engine in settings.TEMPLATES for d in engine.get("DIRS", [])]
    dirs += [Path(app.path) / "templates" for app in apps.get_app_configs()]
    ours = [d.resolve() for d in dirs if d.is_dir() and d.resolve().is_relative_to(ROOT)]
    ours = [d for d in ours if "site-packages" not in d.parts]
    return {path for d in ours for path in d.rglob("*") if path.is_file()}


def unrendered(templates: Iterable[Path], rendered: Iterable[str]) -> list[str]:
    """The templates (relative to the project) that no rendered origin names."""
    seen = {Path(name).resolve() for name in rendered}
    return sorted(str(path.relative_to(ROOT)) for path in templates if path not in seen)


def money_gaps(coverage: Any, listed: Iterable[str], root: Path = ROOT) -> list[str]:
    """One line per listed money file (relative to `root`) that is missing or has lines no test ran."""
    gaps = []
    for name in listed:
        path = root / name
        if not path.is_file():
            gaps.append(f"{name}: listed as money code but there is no such file")
            continue
        _, statements, _, missing, text = coverage.analysis2(str(path))
        if missing:
            gaps.append(f"{name}: {len(missing)} of {len(statements)} lines never run: {text}")
    return gaps


class SuiteChecks:
    """Records what the session rendered and, at its end, fails it when the whole suite left a template
    unrendered or a money line unrun. A pytest-xdist worker only records, for the controller."""

    def __init__(self) -> None:
        self.rendered: set[str] = set()
        self.deselected = 0
        self.problems: list[str] = []
        template_rendered.connect(self._record, dispatch_uid="orweb-suite-checks")

    def _record(self, sender: Any, template: Any, **kwargs: Any) -> None:
        origin = getattr(template, "origin", None)
        if origin is not None and origin.name:
            self.rendered.add(str(origin.name))

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self.deselected += len(items)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """On a worker: hand what it saw to the controller (xdist sends `workeroutput` after this hook)."""
        output = getattr(session.config, "workeroutput", None)
        if output is not None:
            output[RENDERED] = sorted(self.rendered)
            output[DESELECTED] = self.deselected

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        """On the controller: what a worker rendered counts; each worker deselects the same tests."""
        output = getattr(node, "workeroutput", {})
        self.rendered.update(output.get(RENDERED, ()))
        self.deselected = max(self.deselected, output.get(DESELECTED, 0))

    # Outermost of the run-loop wrappers, so this runs after pytest-cov's has stopped coverage and combined
    # the workers' data, and still early enough to count as a failure (as pytest-cov's own fail-under does).
    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        result = yield
        worker = hasattr(session.config, "workerinput")
        if not worker and whole_suite(session.config, self.deselected):
            self.problems = self._check(session.config)
            if self.problems:
                session.testsfailed += 1
        return result

    def _check(self, config: pytest.Config) -> list[str]:
        problems = [f"never rendered by a test: {name}" for name in unrendered(project_template_files(), self.rendered)]
        measured = measured_coverage(config)
        if measured is not None:
            listed = measured.get_option("run:include") or []
            problems += [
                f"money code not fully covered: {gap}" for gap in money_gaps(measured, listed, config.rootpath)
            ]
        return problems

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.problems:
            terminalreporter.section("whole-suite checks failed", red=True, bold=True)
            for problem in self.problems:
                terminalreporter.line(problem, red=True)


def measured_coverage(config: pytest.Config) -> Any:
    """pytest-cov's coverage of this run (the workers' combined, on xdist), or None without pytest-cov."""
    plugin = config.pluginmanager.getplugin("_cov")
    controller = getattr(plugin, "cov_controller", None)
    return controller.cov if controller is not None else None


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(SuiteChecks(), "orweb-suite-checks")
