"""The harness's Allure writer makes the report allure-pytest's listener makes.

One test module that uses what allure-pytest reads (outcomes of every kind, fixtures with
finalizers at two scopes, a failing fixture, one asked for in a test's body,
parametrization, markers, allure's label, title and description decorators, steps with
attachments, the dynamic API, captured output and logs, a class) is run twice in
subprocesses: with allure-pytest alone, and with the writer taking over (wired by a
conftest as the harness's plugin wires it), single-process and under xdist. The results,
containers and attachments are compared after removing only what differs from run to run
by design (uuids, timestamps, the process and thread label).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

SAMPLE = '''
import logging
import sys

import allure
import pytest


@pytest.fixture(scope="session")
def shared():
    yield {"session": 1}


@pytest.fixture
def resource(request):
    allure.attach("set up", name="fixture note", attachment_type=allure.attachment_type.TEXT)
    request.addfinalizer(lambda: None)
    yield "resource"


@pytest.fixture
def broken_fixture():
    raise RuntimeError("the fixture could not start")


def test_passes(shared, resource):
    """A docstring is the description."""
    assert resource == "resource"


def test_fails():
    assert 1 + 1 == 3, "arithmetic"


def test_broken():
    raise ValueError("not an assertion")


def test_setup_error(broken_fixture):
    pass


def test_skipped():
    pytest.skip("not here")


@pytest.mark.xfail(reason="known")
def test_xfail():
    assert False


@pytest.mark.xfail(reason="fixed meanwhile", strict=False)
def test_xpass():
    pass


@pytest.mark.smoke
@allure.feature("payments")
@allure.severity(allure.severity_level.CRITICAL)
@allure.link("https://example.org/issue/1", name="issue 1")
@pytest.mark.parametrize("number, word", [(1, "one"), (2, "two")], ids=["first", "second"])
def test_parametrized(number, word):
    assert number > 0


@allure.title("titled {word}")
@pytest.mark.parametrize("word", ["alpha"])
def test_titled(word):
    pass


def test_steps_and_attachments(resource):
    with allure.step("outer step"):
        allure.attach("inside", name="in step", attachment_type=allure.attachment_type.TEXT)
        with allure.step("inner step"):
            pass
    allure.attach(b"\\x00\\xff\\xfe", name="binary", attachment_type=allure.attachment_type.PNG)
    allure.attach('{"a": 1}', name="data", attachment_type=allure.attachment_type.JSON)
    allure.dynamic.label("owner", "somebody")
    allure.dynamic.tag("dynamic-tag")
    allure.dynamic.description("set at run time")
    allure.dynamic.parameter("extra", 42)
    allure.dynamic.link("https://example.org/x", name="x")


def test_failing_step():
    with allure.step("step that fails"):
        assert False, "inside a step"


@pytest.fixture
def asked_in_the_body():
    yield "late"


def test_asks_for_a_fixture_in_its_body(request):
    assert request.getfixturevalue("asked_in_the_body") == "late"


def test_output(caplog):
    print("to stdout")
    print("to stderr", file=sys.stderr)
    logging.getLogger("sample").warning("a log line")


class TestGroup:
    def test_in_class(self, shared):
        pass
'''

TAKE_OVER = """
import pytest
from conformance.sinks import allure_writer


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    allure_writer.take_over(config)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    allure_writer.write_results(session.config)


def pytest_unconfigure(config):
    allure_writer.write_results(config)
"""

VOLATILE = {"uuid", "start", "stop", "timestamp"}


def _strip(value: Any, folder: Path) -> Any:
    if isinstance(value, dict):
        if "source" in value:  # an attachment: its content, not its random file name
            value = {**value, "source": (folder / value["source"]).read_bytes().decode("latin-1")}
        return {key: _strip(item, folder) for key, item in value.items() if key not in VOLATILE}
    if isinstance(value, list):
        return [_strip(item, folder) for item in value]
    return value


def _labels(labels: Iterable[dict[str, str]]) -> list[tuple[str, str]]:
    # The thread label names the process; markers given as allure labels come from a set.
    return sorted((label["name"], label["value"]) for label in labels if label["name"] != "thread")


def normalized(folder: Path) -> dict[str, Any]:
    """The report's content, keyed by test: results, and the containers each test is in."""
    results = [json.loads(path.read_text()) for path in folder.glob("*-result.json")]
    names = {result["uuid"]: f"{result['fullName']}::{result['name']}" for result in results}
    tests: dict[str, Any] = {}
    for result in results:
        document = _strip(result, folder)
        document["labels"] = _labels(result.get("labels", []))
        tests[names[result["uuid"]]] = document
    containers = []
    for path in folder.glob("*-container.json"):
        container = json.loads(path.read_text())
        children = sorted(names.get(child, "?") for child in container.get("children", []))
        containers.append({**_strip(container, folder), "children": children})
    files = sorted(path.name.rsplit("-", 1)[-1] for path in folder.iterdir())
    return {
        "tests": tests,
        "containers": sorted(containers, key=lambda item: json.dumps(item, sort_keys=True)),
        "file kinds": files,
    }


def _closing_finalizers_unfinished(containers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The containers as allure-pytest's synchronous file logger leaves them.

    pytest's own finalizer of a fixture (``<fixture>::<lambda>``, the last one) ends the
    fixture from inside, so allure-pytest writes the container before that finalizer has
    stopped: that after has no status in its files (a user's own lambda before it has one).
    The writer serialises the container once the finalizer has stopped, as the harness's
    earlier background logger did: the same after, with its status. Dropped here, after
    checking that each is "passed"."""
    unfinished = []
    for container in containers:
        afters = list(container.get("afters", []))
        if afters and afters[-1]["name"].endswith("::<lambda>"):
            assert afters[-1].get("status") == "passed", container
            afters[-1] = {key: value for key, value in afters[-1].items() if key != "status"}
        unfinished.append({**container, "afters": afters})
    return sorted(unfinished, key=lambda item: json.dumps(item, sort_keys=True))


def _run(pytester: pytest.Pytester, folder: str, *args: str) -> Path:
    results = pytester.path / folder
    outcome = pytester.runpytest_subprocess(
        "-p", "no:conformance.plugin", "-p", "no:randomly", "-p", "no:cacheprovider", f"--alluredir={results}", *args
    )
    assert outcome.ret == 1, outcome.stdout.str()  # the sample has failures
    return results


@pytest.fixture
def sample(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_sample=SAMPLE)
    pytester.makeini("[pytest]\nmarkers =\n    smoke: a plain marker, a tag in Allure\n")
    return pytester


def test_the_writer_makes_allure_pytests_report(sample: pytest.Pytester) -> None:
    expected = normalized(_run(sample, "by-allure-pytest"))
    sample.makeconftest(TAKE_OVER)
    written = normalized(_run(sample, "by-the-writer"))
    assert len(expected["tests"]) == 15
    assert written["tests"].keys() == expected["tests"].keys()
    for name, document in expected["tests"].items():
        assert written["tests"][name] == document, name
    assert _closing_finalizers_unfinished(written["containers"]) == expected["containers"]
    assert written["file kinds"] == expected["file kinds"]


def test_under_xdist_the_controller_writes_every_workers_results(sample: pytest.Pytester) -> None:
    expected = normalized(_run(sample, "by-allure-pytest"))
    sample.makeconftest(TAKE_OVER)
    written = normalized(_run(sample, "by-the-writer", "-n", "2"))
    # Under xdist the tests spread over two workers; each test's own result is the same. A
    # session fixture used in both workers has a container in each, so only those differ.
    assert written["tests"] == expected["tests"]
    kinds = [kind for kind in written["file kinds"] if kind != "container.json"]
    assert kinds == [kind for kind in expected["file kinds"] if kind != "container.json"]
    names = {container["befores"][0]["name"] for container in written["containers"]}
    assert names == {container["befores"][0]["name"] for container in expected["containers"]}
    assert all("?" not in container["children"] for container in written["containers"])


def test_a_clean_folder_starts_empty_and_an_unclean_one_keeps_old_results(sample: pytest.Pytester) -> None:
    sample.makeconftest(TAKE_OVER)
    folder = _run(sample, "results")
    first = len(list(folder.glob("*-result.json")))
    _run(sample, "results")
    assert len(list(folder.glob("*-result.json"))) == 2 * first
    _run(sample, "results", "--clean-alluredir")
    assert len(list(folder.glob("*-result.json"))) == first


def test_a_test_whose_worker_dies_is_a_broken_result(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_crash="import os, signal\n\ndef test_dies():\n    os.kill(os.getpid(), signal.SIGKILL)\n\n"
        "def test_lives():\n    pass\n"
    )
    pytester.makeconftest(TAKE_OVER)
    results = pytester.path / "results"
    outcome = pytester.runpytest_subprocess(
        "-p", "no:conformance.plugin", "-p", "no:randomly", f"--alluredir={results}", "-n", "2"
    )
    assert outcome.ret == 1, outcome.stdout.str()
    written = {doc["name"]: doc for doc in map(json.loads, map(Path.read_text, results.glob("*-result.json")))}
    assert written["test_lives"]["status"] == "passed"
    dead = written["test_dies"]
    assert dead["status"] == "broken"
    assert dead["fullName"] == "test_crash#test_dies"
    assert dead["statusDetails"]["message"] == "the process running this test died"


def test_a_write_that_fails_is_raised_when_the_writer_is_flushed(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from conformance.sinks.allure_writer import PAYLOAD_ATTRIBUTE, AllureWriter

    occupied = tmp_path / "occupied"
    occupied.write_text("a file where the results folder should be")
    writer = AllureWriter(occupied, recorder=None)
    attachment = ["a-attachment.txt", "text", "é"]
    payload = {"results": ['{"name": "t"}'], "containers": [], "files": [attachment], "globals": []}
    writer.pytest_runtest_logreport(SimpleNamespace(**{PAYLOAD_ATTRIBUTE: payload, "when": "teardown"}))  # type: ignore[arg-type]
    with pytest.raises(OSError):
        writer.flush()
    writable = AllureWriter(tmp_path / "results", recorder=None)
    writable.pytest_runtest_logreport(SimpleNamespace(**{PAYLOAD_ATTRIBUTE: payload, "when": "teardown"}))  # type: ignore[arg-type]
    writable.flush()
    assert [path.read_text() for path in (tmp_path / "results").glob("*-result.json")] == ['{"name": "t"}']
    assert (tmp_path / "results" / "a-attachment.txt").read_text(encoding="utf-8") == "é"


def test_a_malformed_payload_is_a_failed_write_and_the_rest_is_still_written(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from conformance.sinks.allure_writer import PAYLOAD_ATTRIBUTE, AllureWriter

    writer = AllureWriter(tmp_path / "results", recorder=None)
    malformed = {"results": [], "containers": [], "files": [["only-a-name"]], "globals": []}
    good = {"results": ['{"name": "after"}'], "containers": [], "files": [], "globals": []}
    for payload in (malformed, good):
        writer.pytest_runtest_logreport(SimpleNamespace(**{PAYLOAD_ATTRIBUTE: payload, "when": "teardown"}))  # type: ignore[arg-type]
    with pytest.raises(OSError, match="ValueError"):
        writer.flush()
    assert [path.read_text() for path in (tmp_path / "results").glob("*-result.json")] == ['{"name": "after"}']
