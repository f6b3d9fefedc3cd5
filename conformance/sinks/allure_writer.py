"""Allure's results, recorded as the tests run and written once, at the end of the session.

allure-pytest's listener builds every test's result through allure-commons' reporter and
plugin manager (a hook call per label, an object per fixture, a file per item the moment it
is reported): about 1.5 ms per test on the lab's 2-core VM, and the harness's labels and
attachments another 1.2 ms through the dynamic API (benchmarks/run.py). This module makes the
same result files with a fraction of that work:

- ``AllureRecorder`` runs in the process that runs the tests (the single process, or each
  xdist worker). It fills the same allure-commons model objects the listener fills, from the
  same pytest hooks and with allure-pytest's own functions for every derived value (the
  name and title, the full name, the history and test-case ids, the suite labels, the
  markers as tags, the links, the statuses and their details), so the results are the ones
  allure-pytest would write. It also answers allure's dynamic API (``allure.step``,
  ``allure.attach``, ``allure.dynamic.*``) for tests that use it. At the teardown report of
  each test it turns the test's result, its attachments and the fixture containers closed
  meanwhile into plain data on the report (``PAYLOAD_ATTRIBUTE``), which xdist carries to
  the controller as it carries the report.
- ``AllureWriter`` runs in the process that owns the session (the single process or the
  xdist controller). It writes each report's files as the report arrives, in a background
  thread that does only the file system's work, and waits for it at the end of the
  session (the Allure sink, which fails the run if a write failed): the same names
  (``<uuid>-result.json``, ``-container.json``, ``-attachment.<ext>``) and the same JSON
  (allure-commons' ``asdict`` filter, as ``_plain``; indented when ``ALLURE_INDENT_OUTPUT`` is set). What
  arrives later (fixtures finalised after the last test, a worker's leftovers at its end)
  is written then too, and anything after that at unconfigure.

A test whose worker dies (``kill -9``) reaches the controller as xdist's crash report: it is
written as a broken result naming the crash, where allure-pytest's files for that worker's
last tests were lost with it. The harness's own labels and evidence are handed to the
recorder directly (``annotate``), not through the dynamic API's hook calls.
"""

from __future__ import annotations

import base64
import contextlib
import doctest
import json
import os
import queue
import random
import shutil
import threading
import uuid
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from allure_commons import fixture as allure_fixture
from allure_commons import hookimpl, plugin_manager
from allure_commons.model2 import (
    ATTACHMENT_PATTERN,
    INDENT,
    TEST_CASE_PATTERN,
    TEST_GROUP_PATTERN,
    Attachment,
    GlobalAttachment,
    GlobalError,
    Globals,
    Label,
    Link,
    Parameter,
    Status,
    StatusDetails,
    TestAfterResult,
    TestBeforeResult,
    TestResult,
    TestResultContainer,
    TestStepResult,
)
from allure_commons.types import AttachmentType, LabelType
from allure_commons.utils import host_tag, md5, now, platform_label, represent, thread_tag
from allure_pytest import utils as allure_utils
from allure_pytest.compat import getfixturedefs

PAYLOAD_ATTRIBUTE = "conformance_allure"
WORKER_OUTPUT_KEY = "conformance_allure"
_SUITE_LABELS = {LabelType.PARENT_SUITE, LabelType.SUITE, LabelType.SUB_SUITE}


def _kept(_: Any, value: Any) -> bool:
    # allure-commons' filter for every item it writes: no None, no empty list, False kept.
    return bool(value) or value is False


def _plain(value: Any) -> Any:
    """``attr.asdict(item, filter=_kept)`` for allure-commons' model: each attrs instance a
    dict of its kept attributes in declaration order, lists and tuples lists, dicts dicts,
    anything else as it is. The same data (the self-tests compare the files), made by one
    small recursion instead of asdict's general one, which is most of a result's cost."""
    fields = getattr(type(value), "__attrs_attrs__", None)
    if fields is not None:
        plain = {}
        for field_ in fields:
            attribute = getattr(value, field_.name)
            if attribute or attribute is False:
                plain[field_.name] = _plain(attribute)
        return plain
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {_plain(key): _plain(item) for key, item in value.items()}
    return value


def _document(item: Any) -> str:
    """An item's file content, as allure-commons' file logger writes it (its ``json.dump`` to
    a file gives the same text as ``json.dumps``)."""
    indent = INDENT if os.environ.get("ALLURE_INDENT_OUTPUT") else None
    return json.dumps(_plain(item), indent=indent, ensure_ascii=False)


# Version-4 UUIDs from a generator seeded once per process from the OS: the ids and file
# names only need to be unique (122 random bits), and os.urandom, which uuid.uuid4 calls
# for each one, costs about 16 us a call on this VM, six times per test.
_ids = random.Random()  # noqa: S311 - unique names, not secrets


def _new_uuid() -> str:
    return str(uuid.UUID(int=_ids.getrandbits(128), version=4))


def _attachment_file(attachment_type: Any, extension: str | None) -> tuple[str, str | None]:
    """allure-commons' attachment file name (``<uuid>-attachment.<ext>``) and MIME type."""
    mime_type = attachment_type
    if isinstance(attachment_type, AttachmentType):
        extension = attachment_type.extension
        mime_type = attachment_type.mime_type
    return ATTACHMENT_PATTERN.format(prefix=_new_uuid(), ext=extension or "attach"), mime_type


def _brokes_test(exception: BaseException) -> bool:
    """allure-pytest: an exception that is not an assertion makes the test broken."""
    return not isinstance(exception, AssertionError | pytest.fail.Exception | doctest.DocTestFailure)


@dataclass
class _Running:
    """The test the recorder is filling: its result, its open steps, and its attachments."""

    result: TestResult
    steps: dict[str, TestStepResult] = field(default_factory=dict)
    open_steps: list[TestStepResult] = field(default_factory=list)
    files: list[tuple[str, bytes]] = field(default_factory=list)
    # The fixtures allure-pytest would find for the test, found again only when the test has
    # asked for more (``request.getfixturevalue`` in its body).
    fixture_definitions: tuple[int, list[Any]] = (-1, [])


def _carried(name: str, body: bytes) -> list[str]:
    """An attachment as JSON-safe text on the report (plugins such as pytest-reportlog write
    a report's fields as JSON): its UTF-8 text when it is text, else base64."""
    try:
        return [name, "text", body.decode("utf-8")]
    except UnicodeDecodeError:
        return [name, "base64", base64.b64encode(body).decode("ascii")]


def _uncarried(carried: Any) -> tuple[str, bytes]:
    name, encoding, text = carried
    return str(name), base64.b64decode(text) if encoding == "base64" else str(text).encode("utf-8")


class AllureRecorder:
    """Fills each test's Allure result as it runs; see the module's docstring."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self._host = host_tag()
        self._thread = thread_tag()
        self._language = platform_label()
        self._running: _Running | None = None
        self._containers: dict[int, TestResultContainer] = {}
        self._fixture_runs: dict[str, TestBeforeResult | TestAfterResult] = {}
        # Containers closed since the last payload, serialised with it: a finalizer that ends
        # a fixture's container from inside (pytest's own) finishes after the container closes.
        self._closed: list[TestResultContainer] = []
        self._files: list[tuple[str, bytes]] = []  # attachments made outside a test
        self._globals: list[str] = []
        # Fixture setups and finalizers running now: an attachment made in one goes to it.
        self._fixtures_running: list[TestBeforeResult | TestAfterResult] = []

    # --- the harness's fast path --------------------------------------------------------

    def annotate(
        self, labels: Iterable[tuple[str, str]], description: str | None, attachments: Iterable[tuple[str, str, Any]]
    ) -> bool:
        """The labels, description and attachments ``conformance.sinks.allure`` would make
        through the dynamic API, added to the running test at once. False outside a test."""
        running = self._running
        if running is None:
            return False
        running.result.labels.extend(Label(name=name, value=value) for name, value in labels)
        if description is not None:
            running.result.description = description
        for body, name, attachment_type in attachments:
            self.attach_data(body, name, attachment_type, None)
        return True

    # --- pytest hooks -------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, Any, Any]:
        moment = now()
        self._running = _Running(TestResult(name=item.name, uuid=_new_uuid(), start=moment, stop=moment))
        try:
            return (yield)
        finally:
            self._running = None

    def _add_to_containers(self, item: pytest.Item) -> None:
        """The running test is a child of each open container of a fixture it uses, found
        as allure-pytest finds them (by name, through the fixture manager: the pseudo
        fixtures of direct parametrization are not among them)."""
        running = self._running
        request = getattr(item, "_request", None)
        if running is None or request is None or not self._containers:
            return
        names = getattr(request, "fixturenames", ())
        if running.fixture_definitions[0] != len(names):
            manager = item.session._fixturemanager
            found = [definition for name in names for definition in getfixturedefs(manager, name, item) or ()]
            running.fixture_definitions = (len(names), found)
        test_uuid = running.result.uuid
        for definition in running.fixture_definitions[1]:
            container = self._containers.get(id(definition))
            if container is not None and test_uuid not in container.children:
                container.children.append(test_uuid)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, None, None]:
        try:
            return (yield)
        finally:
            self._add_to_containers(item)
            running = self._running
            if running is not None:
                result = running.result
                callspec = getattr(item, "callspec", None)
                params = callspec.params if callspec is not None else {}
                result.name = allure_utils.allure_name(item, params, callspec.id if callspec is not None else None)
                result.fullName = allure_utils.allure_full_name(item)
                result.titlePath = [*allure_utils.allure_title_path(item)]
                result.testCaseId = md5(result.fullName)
                result.description = allure_utils.allure_description(item)
                result.descriptionHtml = allure_utils.allure_description_html(item)
                known = {parameter.name for parameter in result.parameters}
                result.parameters.extend(
                    Parameter(name=name, value=represent(value)) for name, value in params.items() if name not in known
                )

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        running = self._running
        if running is not None:
            running.result.start = now()
        try:
            return (yield)
        finally:
            self._add_to_containers(item)
            if running is not None:
                running.result.stop = now()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, None, None]:
        try:
            return (yield)
        finally:
            running = self._running
            if running is not None:
                self._finish_labels(item, running.result)

    def _finish_labels(self, item: pytest.Item, result: TestResult) -> None:
        callspec = getattr(item, "callspec", None)
        result.historyId = allure_utils.get_history_id(
            result.fullName, result.parameters, original_values=callspec.params if callspec is not None else {}
        )
        labels = result.labels
        labels.extend(Label(name=name, value=value) for name, value in allure_utils.allure_labels(item))
        labels.extend(Label(name=LabelType.TAG, value=value) for value in allure_utils.pytest_markers(item))
        existing = {label.name for label in labels if label.name in _SUITE_LABELS}
        labels.extend(
            Label(name=name, value=value)
            for name, value in allure_utils.allure_suite_labels(item)
            if name not in existing
        )
        labels.append(Label(name=LabelType.HOST, value=self._host))
        labels.append(Label(name=LabelType.THREAD, value=self._thread))
        labels.append(Label(name=LabelType.FRAMEWORK, value="pytest"))
        labels.append(Label(name=LabelType.LANGUAGE, value=self._language))
        labels.append(Label(name="package", value=allure_utils.allure_package(item)))
        result.links.extend(Link(kind, url, name) for kind, url, name in allure_utils.allure_links(item))

    @pytest.hookimpl(hookwrapper=True)
    def pytest_fixture_setup(self, fixturedef: pytest.FixtureDef[Any], request: Any) -> Generator[None, Any, None]:
        # An old-style wrapper, as allure-pytest's: the outcome's traceback ends in the
        # fixture, where a new-style wrapper's exception would carry pluggy's frames too.
        name = getattr(fixturedef.func, "__allure_display_name__", fixturedef.argname)
        container = self._containers.get(id(fixturedef))
        if container is None:
            container = self._containers[id(fixturedef)] = TestResultContainer(uuid=_new_uuid())
        container.start = now()
        before = TestBeforeResult(name=name, start=now())
        container.befores.append(before)
        self._fixtures_running.append(before)
        try:
            outcome = yield
        finally:
            self._fixtures_running.remove(before)
        before.stop = now()
        before.status = allure_utils.get_outcome_status(outcome)
        before.statusDetails = allure_utils.get_outcome_status_details(outcome)
        # Each finalizer is timed as an "after" of this container, as allure-pytest does.
        finalizers = getattr(fixturedef, "_finalizers", [])
        for index, finalizer in enumerate(finalizers):
            label = f"{name}::{getattr(finalizer, '__name__', index)}"
            finalizers[index] = allure_fixture(finalizer, parent_uuid=container.uuid, name=label)

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_post_finalizer(self, fixturedef: pytest.FixtureDef[Any]) -> Generator[None, None, None]:
        try:
            return (yield)
        finally:
            if hasattr(fixturedef, "cached_result"):
                container = self._containers.pop(id(fixturedef), None)
                if container is not None:
                    container.stop = now()
                    self._closed.append(container)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[Any]) -> Generator[None, Any, Any]:
        report: pytest.TestReport = yield
        running = self._running
        if running is None:
            return report
        result = running.result
        status = allure_utils.get_pytest_report_status(report)
        details = None
        if call.excinfo is not None:
            message = call.excinfo.exconly()
            if hasattr(report, "wasxfail"):
                reason = report.wasxfail
                message = (f"XFAIL {reason}" if reason else "XFAIL") + "\n\n" + message
            details = StatusDetails(message=message, trace=report.longreprtext)
            if status != Status.SKIPPED and _brokes_test(call.excinfo.value):
                status = Status.BROKEN
        if status == Status.PASSED and hasattr(report, "wasxfail"):
            reason = report.wasxfail
            details = StatusDetails(message=f"XPASS {reason}" if reason else "XPASS")
        if report.when == "setup":
            result.status, result.statusDetails = status, details
        elif report.when == "call":
            if result.status == Status.PASSED:
                result.status, result.statusDetails = status, details
        elif report.when == "teardown":
            if status in (Status.FAILED, Status.BROKEN) and result.status == Status.PASSED:
                result.status, result.statusDetails = status, details
            if self.config.option.attach_capture:
                for body, name in ((report.caplog, "log"), (report.capstdout, "stdout"), (report.capstderr, "stderr")):
                    if body:
                        self.attach_data(body, name, AttachmentType.TEXT, None)
            if result.status is None:
                result.status = Status.SKIPPED
            setattr(report, PAYLOAD_ATTRIBUTE, self._payload(running))
        return report

    def _payload(self, running: _Running | None) -> dict[str, Any]:
        """What the writer needs, as plain data (xdist serialises it with the report)."""
        files = [*self._files, *(running.files if running is not None else [])]
        self._files = []
        payload: dict[str, Any] = {
            "results": [_document(running.result)] if running is not None else [],
            "containers": [_document(container) for container in self._closed],
            "files": [_carried(name, body) for name, body in files],
            "globals": self._globals,
        }
        self._closed, self._globals = [], []
        return payload

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self) -> None:
        # An xdist worker hands what came after its last report (the session's fixtures are
        # finalised by pytest's own sessionfinish, before this) to the controller.
        workeroutput: dict[str, Any] | None = getattr(self.config, "workeroutput", None)
        if workeroutput is not None:
            workeroutput[WORKER_OUTPUT_KEY] = self.leftovers()

    def leftovers(self) -> dict[str, Any]:
        """Containers closed, and files attached, after the last test's report."""
        return self._payload(None)

    # --- allure's dynamic API (allure_commons hooks) -------------------------------------

    def _current(self) -> Any:
        """Where an attachment goes, as allure-commons' reporter places it: the innermost
        open step, else a fixture running now, else the test."""
        running = self._running
        if running is not None and running.open_steps:
            return running.open_steps[-1]
        if self._fixtures_running:
            return self._fixtures_running[-1]
        return running.result if running is not None else None

    @hookimpl
    def attach_data(self, body: Any, name: str, attachment_type: Any, extension: str | None) -> None:
        file_name, mime_type = _attachment_file(attachment_type, extension)
        target = self._current()
        if target is not None:
            target.attachments.append(Attachment(source=file_name, name=name, type=mime_type))
        # allure-commons writes a text body as UTF-8 and bytes as they are.
        kept = body if isinstance(body, bytes) else str(body).encode("utf-8")
        (self._running.files if self._running is not None else self._files).append((file_name, kept))

    @hookimpl
    def attach_file(self, source: Any, name: str, attachment_type: Any, extension: str | None) -> None:
        # The source may be gone by the end of the run: its content is read now.
        self.attach_data(Path(source).read_bytes(), name, attachment_type, extension)

    @hookimpl
    def global_attach_data(self, body: Any, name: str, attachment_type: Any, extension: str | None) -> None:
        file_name, mime_type = _attachment_file(attachment_type, extension)
        self._files.append((file_name, body if isinstance(body, bytes) else str(body).encode("utf-8")))
        attachment = GlobalAttachment(source=file_name, name=name, type=mime_type, timestamp=now())
        self._globals.append(_document(Globals(attachments=[attachment])))

    @hookimpl
    def global_attach_file(self, source: Any, name: str, attachment_type: Any, extension: str | None) -> None:
        self.global_attach_data(Path(source).read_bytes(), name, attachment_type, extension)

    @hookimpl
    def global_error(self, message: str, trace: str) -> None:
        self._globals.append(_document(Globals(errors=[GlobalError(message=message, trace=trace, timestamp=now())])))

    @hookimpl
    def start_step(self, uuid: str, title: str, params: dict[str, Any]) -> None:
        running = self._running
        if running is None:
            return
        step = TestStepResult(
            name=title, start=now(), parameters=[Parameter(name=name, value=value) for name, value in params.items()]
        )
        parent = running.open_steps[-1] if running.open_steps else running.result
        parent.steps.append(step)
        running.steps[uuid] = step
        running.open_steps.append(step)

    @hookimpl
    def stop_step(self, uuid: str, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        running = self._running
        step = running.steps.pop(uuid, None) if running is not None else None
        if running is None or step is None:
            return
        step.stop = now()
        step.status = allure_utils.get_status(exc_val)
        step.statusDetails = allure_utils.get_status_details(exc_type, exc_val, exc_tb)
        with contextlib.suppress(ValueError):
            running.open_steps.remove(step)

    @hookimpl
    def start_fixture(self, parent_uuid: str, uuid: str, name: str) -> None:
        after = TestAfterResult(name=name, start=now())
        self._fixture_runs[uuid] = after
        self._fixtures_running.append(after)
        for container in self._containers.values():
            if container.uuid == parent_uuid:
                container.afters.append(after)
                return

    @hookimpl
    def stop_fixture(self, parent_uuid: str, uuid: str, name: str, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        after = self._fixture_runs.pop(uuid, None)
        if after is not None:
            with contextlib.suppress(ValueError):
                self._fixtures_running.remove(after)
            after.stop = now()
            after.status = allure_utils.get_status(exc_val)
            after.statusDetails = allure_utils.get_status_details(exc_type, exc_val, exc_tb)

    @hookimpl
    def add_title(self, test_title: str) -> None:
        if self._running is not None:
            self._running.result.name = test_title

    @hookimpl
    def add_description(self, test_description: str) -> None:
        if self._running is not None:
            self._running.result.description = test_description

    @hookimpl
    def add_description_html(self, test_description_html: str) -> None:
        if self._running is not None:
            self._running.result.descriptionHtml = test_description_html

    @hookimpl
    def add_link(self, url: str, link_type: str, name: str | None) -> None:
        if self._running is None:
            return
        link_url = allure_utils.format_allure_link(self.config, url, link_type)
        links = self._running.result.links
        if all(link.url != link_url for link in links):
            links.append(Link(link_type, link_url, link_url if name is None else name))

    @hookimpl
    def add_label(self, label_type: str, labels: Iterable[str]) -> None:
        if self._running is not None:
            self._running.result.labels.extend(Label(label_type, label) for label in labels)

    @hookimpl
    def add_parameter(self, name: str, value: Any, excluded: bool | None, mode: Any) -> None:
        if self._running is None:
            return
        parameters = self._running.result.parameters
        existing = next((parameter for parameter in parameters if parameter.name == name), None)
        if existing is not None:
            existing.value = represent(value)
        else:
            parameters.append(
                Parameter(
                    name=name, value=represent(value), excluded=excluded or None, mode=mode.value if mode else None
                )
            )


class AllureWriter:
    """Writes every test's Allure files as its report arrives, in a background thread; see
    the module's docstring.

    The documents are made by the recorder (serialised in the process that ran the test);
    what is left is the file system's work, which on some disks costs several times the
    serialising (this VM's project folder: about 0.3 ms to create a file). The thread does
    only that: the creates and writes release the interpreter's lock, so they overlap with
    the next tests and with the end of the session. ``flush`` waits for it, at the end of
    the session (the Allure sink, before the run's summary and exit status) and at
    unconfigure; a write that failed is raised there, so the run reports it."""

    def __init__(self, report_dir: Path, recorder: AllureRecorder | None) -> None:
        self.report_dir = report_dir
        self.recorder = recorder
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._failures: list[OSError] = []

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        payload = getattr(report, PAYLOAD_ATTRIBUTE, None)
        if isinstance(payload, dict):
            # Taken off the report: the reports live until the end of the run (the terminal's
            # summary keeps them), and no other plugin needs the documents.
            delattr(report, PAYLOAD_ATTRIBUTE)
            self._submit(payload)
        elif str(report.when) == "???":
            self._submit(crash_payload(report))  # xdist: the worker running it died

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        leftovers = getattr(node, "workeroutput", {}).get(WORKER_OUTPUT_KEY)
        if isinstance(leftovers, dict):
            self._submit(leftovers)

    def _submit(self, payload: dict[str, Any]) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._drain, name="allure-writer", daemon=True)
            self._thread.start()
        self._queue.put(payload)

    def _drain(self) -> None:
        while True:
            payload = self._queue.get()
            try:
                self._write(payload)
            except Exception as error:  # noqa: BLE001 - the thread must live on; flush raises it
                # A malformed payload (a worker of another version) is reported like a failed
                # write, where a dead thread would leave the rest unwritten and say nothing.
                failure = error if isinstance(error, OSError) else OSError(f"{type(error).__name__}: {error}")
                self._failures.append(failure)
            finally:
                self._queue.task_done()

    def flush(self) -> None:
        """Return once every file received so far is written; raise the first failed write."""
        if self.recorder is not None:
            leftovers = self.recorder.leftovers()
            if any(leftovers.values()):
                self._submit(leftovers)
        if self._thread is not None:
            if self._thread.is_alive():
                self._queue.join()
            else:  # interpreter shutdown stopped the thread: write here
                while not self._queue.empty():
                    self._write(self._queue.get_nowait())
        failures, self._failures = self._failures, []
        if failures:
            raise failures[0]

    def _write(self, payload: dict[str, Any]) -> None:
        folder = self.report_dir
        folder.mkdir(parents=True, exist_ok=True)  # cleaned or removed since the run began
        for carried in payload.get("files", ()):
            name, body = _uncarried(carried)
            (folder / name).write_bytes(body)
        for document in payload.get("results", ()):
            self._write_json(TEST_CASE_PATTERN, document)
        for document in payload.get("containers", ()):
            self._write_json(TEST_GROUP_PATTERN, document)
        for document in payload.get("globals", ()):
            self._write_json("{prefix}-globals.json", document)

    def _write_json(self, pattern: str, document: str) -> None:
        (self.report_dir / pattern.format(prefix=_new_uuid())).write_text(document, encoding="utf8")


def crash_payload(report: pytest.TestReport) -> dict[str, Any]:
    """A broken result for a test whose process died while running it (xdist's crash report)."""
    parsed = allure_utils.ParsedPytestNodeId(report.nodeid)
    full_name = f"{parsed.package}{''.join('.' + name for name in parsed.class_names)}#{parsed.test_function}"
    name = report.nodeid.split("::")[-1]
    moment = now()
    result = TestResult(
        name=name,
        status=Status.BROKEN,
        statusDetails=StatusDetails(message="the process running this test died", trace=report.longreprtext),
        start=moment,
        stop=moment,
        uuid=_new_uuid(),
        historyId=md5(full_name, *([name.split("[", 1)[1][:-1]] if "[" in name else [])),
        testCaseId=md5(full_name),
        fullName=full_name,
        titlePath=[segment for segment in [*parsed.path_segments, *parsed.class_names] if segment],
        labels=[
            *(Label(name=label, value=value) for label, value in allure_utils_suites(parsed)),
            Label(name=LabelType.FRAMEWORK, value="pytest"),
            Label(name="package", value=parsed.package),
        ],
    )
    return {"results": [_document(result)], "containers": [], "files": [], "globals": []}


def allure_utils_suites(parsed: Any) -> list[tuple[str, str]]:
    suites = {
        LabelType.PARENT_SUITE: parsed.parent_package,
        LabelType.SUITE: parsed.module,
        LabelType.SUB_SUITE: " > ".join(parsed.class_names),
    }
    return [(label, value) for label, value in suites.items() if value]


def clean(report_dir: Path) -> None:
    """``--clean-alluredir``: what allure-commons' file logger does when it starts."""
    if report_dir.is_dir():
        shutil.rmtree(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)


WRITER_KEY = pytest.StashKey[AllureWriter]()
FOLDER_KEY = pytest.StashKey[str]()
_active: list[AllureRecorder] = []  # the recorder of this process's run, while it is configured


def take_over(config: pytest.Config) -> bool:
    """Record and write the run's Allure results here instead of allure-pytest's listener.

    Called by the harness's ``pytest_configure`` before allure-pytest's: the results folder
    is taken from allure-pytest's option, which is then cleared so that allure-pytest
    registers no listener and no file logger (its options, markers, label selection and
    title helper stay). Returns whether it took over (allure-pytest is there and a results
    folder is asked for)."""
    report_dir = getattr(config.option, "allure_report_dir", None)
    if not report_dir:
        return False
    folder = Path(report_dir).absolute()
    worker = hasattr(config, "workerinput")
    if not worker and config.option.clean_alluredir and not config.option.collectonly:
        clean(folder)
    else:
        folder.mkdir(parents=True, exist_ok=True)
    config.stash[FOLDER_KEY] = str(report_dir)
    config.option.allure_report_dir = None
    recorder = AllureRecorder(config)
    config.pluginmanager.register(recorder, "conformance-allure-recorder")
    # allure-commons' plugin manager is one per interpreter: a run inside a run (pytester)
    # registers its own recorder beside the outer one's, under its own name.
    allure_name = f"conformance-allure-recorder-{id(recorder)}"
    plugin_manager.register(recorder, allure_name)
    _active.append(recorder)
    if not worker:
        writer = AllureWriter(folder, recorder)
        config.pluginmanager.register(writer, "conformance-allure-writer")
        config.stash[WRITER_KEY] = writer

    def release() -> None:
        plugin_manager.unregister(name=allure_name)
        with contextlib.suppress(ValueError):
            _active.remove(recorder)

    config.add_cleanup(release)
    return True


def results_folder(config: pytest.Config) -> str | None:
    """The Allure results folder of this run (allure-pytest's option, as given)."""
    return config.stash.get(FOLDER_KEY, None) or getattr(config.option, "allure_report_dir", None)


def active_recorder() -> AllureRecorder | None:
    """The recorder filling this process's results, if the harness took Allure over."""
    return _active[-1] if _active else None


def write_results(config: pytest.Config) -> None:
    """In the process that owns the session: return once every file received so far is
    written (raises the first write that failed, an OSError)."""
    writer = config.stash.get(WRITER_KEY, None)
    if writer is not None:
        writer.flush()
