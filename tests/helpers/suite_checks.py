"""Checks over the whole suite, which `make test` enforces: every template is rendered by some test, and
every line of the money code runs (the files listed in pyproject's `[tool.coverage.run] include`).

They apply only when the whole suite ran: a run of some tests (`-k`, a path, `--lf`) says nothing about
either, and a run stopped early has already failed. Templates count when Django renders them in this
process (pytest-django's test environment sends `template_rendered`, for `{% include %}`d partials too);
a template rendered only by a server in a subprocess does not. The coverage check needs coverage to be
running (`devstack test` starts it through pytest-cov); under a plain `pytest` it is skipped.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from pathlib import Path
from typing import Any

import pytest
from django.test.signals import template_rendered

ROOT = Path(__file__).resolve().parents[2]
WHOLE_SUITE_ARGS = {ROOT, ROOT / "tests"}


def whole_suite(config: pytest.Config, deselected: int) -> bool:
    """True when the run selected every test: no paths narrower than tests/, no -k/-m, none deselected."""
    option = config.option
    if option.keyword or option.markexpr or option.collectonly or deselected:
        return False
    base = config.invocation_params.dir
    return all("::" not in arg and (base / arg).resolve() in WHOLE_SUITE_ARGS for arg in config.args)


def project_template_files() -> set[Path]:
    """Every file under the project's template directories: settings' DIRS and each of our apps'
    `templates/` (Django's and other libraries' templates are theirs to test)."""
    from django.apps import apps
    from django.conf import settings

    dirs = [Path(d) for engine in settings.TEMPLATES for d in engine.get("DIRS", [])]
    dirs += [Path(app.path) / "templates" for app in apps.get_app_configs()]
    ours = [d.resolve() for d in dirs if d.is_dir() and d.resolve().is_relative_to(ROOT)]
    ours = [d for d in ours if "site-packages" not in d.parts]
    return {path for d in ours for path in d.rglob("*") if path.is_file()}


def unrendered(templates: Iterable[Path], rendered: Iterable[str]) -> list[str]:
    """The templates (relative to the project) that no rendered origin names."""
    seen = {Path(name).resolve() for name in rendered}
    return sorted(str(path.relative_to(ROOT)) for path in templates if path not in seen)


def money_gaps(coverage: Any, listed: Iterable[str]) -> list[str]:
    """One line per listed money file that is missing or has lines no test ran."""
    gaps = []
    for name in listed:
        path = ROOT / name
        if not path.is_file():
            gaps.append(f"{name}: listed as money code but there is no such file")
            continue
        _, statements, _, missing, text = coverage.analysis2(str(path))
        if missing:
            gaps.append(f"{name}: {len(missing)} of {len(statements)} lines never run: {text}")
    return gaps


class SuiteChecks:
    """Records what the session rendered and, at its end, fails it when the whole suite left a template
    unrendered or a money line unrun."""

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

    # Innermost of the run-loop wrappers, so this runs before pytest-cov's wrapper stops coverage, and
    # early enough to count as a failure (as pytest-cov's own fail-under does).
    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        result = yield
        if whole_suite(session.config, self.deselected):
            self.problems = self._check()
            if self.problems:
                session.testsfailed += 1
        return result

    def _check(self) -> list[str]:
        import coverage

        problems = [f"never rendered by a test: {name}" for name in unrendered(project_template_files(), self.rendered)]
        measuring = coverage.Coverage.current()
        if measuring is not None:
            listed = measuring.get_option("run:include") or []
            problems += [f"money code not fully covered: {gap}" for gap in money_gaps(measuring, listed)]
        return problems

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.problems:
            terminalreporter.section("whole-suite checks failed", red=True, bold=True)
            for problem in self.problems:
                terminalreporter.line(problem, red=True)


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(SuiteChecks(), "orweb-suite-checks")
