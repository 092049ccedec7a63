"""The whole-suite checks (tests/helpers/suite_checks.py): when they apply, and what they report."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.helpers.suite_checks import ROOT, money_gaps, unrendered, whole_suite


def config(*args: str, keyword: str = "", markexpr: str = "", collectonly: bool = False, cwd: Path = ROOT):
    option = SimpleNamespace(keyword=keyword, markexpr=markexpr, collectonly=collectonly)
    return SimpleNamespace(option=option, args=list(args), invocation_params=SimpleNamespace(dir=cwd), rootpath=ROOT)


@pytest.mark.parametrize("args", [("tests",), ("tests/",), (str(ROOT),), (".",)])
def test_the_whole_suite_is_tests_or_the_project(args):
    assert whole_suite(config(*args), deselected=0)


def test_it_is_the_whole_suite_from_inside_tests_too():
    assert whole_suite(config(".", cwd=ROOT / "tests"), deselected=0)


@pytest.mark.parametrize(
    ("run", "deselected"),
    [
        (config("tests/catalog"), 0),
        (config("tests", "tests/access/test_pages.py"), 0),
        (config("tests/test_network.py::test_unix_sockets_are_allowed"), 0),
        (config("tests", keyword="access"), 0),
        (config("tests", markexpr="not browser"), 0),
        (config("tests", collectonly=True), 0),
        (config("tests"), 3),  # --lf, --deselect, --sw
    ],
)
def test_a_narrower_run_is_not(run, deselected):
    assert not whole_suite(run, deselected)


def test_it_names_the_templates_no_rendering_touched():
    page, partial = ROOT / "templates/home.html", ROOT / "templates/chat/_meta.html"

    assert unrendered([page, partial], [str(page)]) == ["templates/chat/_meta.html"]
    assert unrendered([page, partial], [str(page), str(partial)]) == []


class Measured:
    """Coverage's `analysis2` answers for a few files: path -> (statements, missing)."""

    def __init__(self, lines: dict[str, tuple[list[int], list[int]]]) -> None:
        self.lines = lines

    def analysis2(self, path: str):
        statements, missing = self.lines[path]
        return path, statements, [], missing, ", ".join(map(str, missing))


def test_it_names_each_money_file_with_lines_never_run():
    covered, gappy = "billing/ledger.py", "billing/holds.py"
    measured = Measured({str(ROOT / covered): ([1, 2, 3], []), str(ROOT / gappy): ([1, 2, 3, 4], [3, 4])})

    assert money_gaps(measured, [covered, gappy]) == ["billing/holds.py: 2 of 4 lines never run: 3, 4"]


def test_a_listed_money_file_that_does_not_exist_is_a_gap():
    assert money_gaps(Measured({}), ["billing/gone.py"]) == [
        "billing/gone.py: listed as money code but there is no such file"
    ]


def test_on_workers_the_controller_checks_what_every_worker_rendered_and_deselected():
    from tests.helpers.suite_checks import SuiteChecks

    workers = [SuiteChecks(), SuiteChecks()]
    workers[0].rendered, workers[1].rendered = {"a.html"}, {"b.html"}
    workers[0].deselected = workers[1].deselected = 2
    outputs = []
    for worker in workers:
        output: dict = {}
        worker.pytest_sessionfinish(SimpleNamespace(config=SimpleNamespace(workeroutput=output)))
        outputs.append(output)
    controller = SuiteChecks()
    for output in outputs:
        controller.pytest_testnodedown(SimpleNamespace(workeroutput=output), error=None)

    assert controller.rendered == {"a.html", "b.html"}
    assert controller.deselected == 2
