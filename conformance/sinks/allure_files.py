"""Allure's result files, written off the tests' path by one background thread.

allure-pytest's file logger (``allure_commons.logger.AllureFileLogger``) writes every test's
result, fixture container and attachment as it is reported, synchronously: serialising,
opening, writing and renaming a file per item, a few milliseconds per test that the next
test waits for. ``BackgroundFileLogger`` is that logger with the same writes (the same
files, names and content) made by a background thread in the order they were reported,
each result serialised by the C JSON encoder in one call (allure-commons' ``json.dump``
takes the pure-Python one, writing piece by piece: most of its cost per test). The
plugin installs it in place of the original before allure-pytest configures itself
(``install``), and flushes it before the run's own files are made from the results: at the
end of the session (before the bulletin, the JUnit rewrite and Allure's run files), at
unconfigure and at interpreter exit, in the controller and in every xdist worker. A file
whose write fails is written again synchronously by the flush, so a normal exit loses
nothing; a process killed with SIGKILL loses what it had not yet written, as it would lose
the test it was in.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import queue
import threading
import uuid
import weakref
from collections.abc import Callable
from typing import Any

from allure_commons import hookimpl
from allure_commons.logger import INDENT, AllureFileLogger
from attr import asdict

_loggers: weakref.WeakSet[BackgroundFileLogger] = weakref.WeakSet()


class BackgroundFileLogger(AllureFileLogger):
    """allure-commons' file logger whose writes a background thread makes, in order."""

    def __init__(self, report_dir: Any, clean: bool = False) -> None:
        super().__init__(report_dir, clean)
        self._queue: queue.Queue[tuple[Callable[..., None], tuple[Any, ...]] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._failed: list[tuple[Callable[..., None], tuple[Any, ...]]] = []
        _loggers.add(self)

    def _submit(self, write: Callable[..., None], *args: Any) -> None:
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._drain, name="allure-files", daemon=True)
                    self._thread.start()
        self._queue.put((write, args))

    def _drain(self) -> None:
        while True:
            task = self._queue.get()
            try:
                if task is None:
                    return
                write, args = task
                try:
                    write(*args)
                except Exception:  # noqa: BLE001 - the flush writes it again, in the caller, and raises there
                    self._failed.append(task)
            finally:
                self._queue.task_done()

    def flush(self) -> None:
        """Return once every file reported so far is on disk (a failed write is retried here)."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.join()
        else:
            while not self._queue.empty():  # the thread is gone (interpreter exit): write here
                task = self._queue.get_nowait()
                if task is not None:
                    self._failed.append(task)
        failed, self._failed = self._failed, []
        for write, args in failed:
            write(*args)

    def _report_item(self, item: Any) -> None:
        """allure-commons' ``_report_item`` with the same name, data and text, serialised in one
        call: ``json.dump`` encodes in pure Python, writing piece by piece; ``json.dumps``
        takes the C encoder and gives the same text, written at once."""
        indent = INDENT if os.environ.get("ALLURE_INDENT_OUTPUT") else None
        filename = item.file_pattern.format(prefix=uuid.uuid4())
        data = asdict(item, filter=lambda _, value: value or value is False)
        text = json.dumps(data, indent=indent, ensure_ascii=False)
        temporary = self._report_dir / f"{filename}.tmp"
        temporary.write_text(text, encoding="utf8")
        temporary.replace(self._report_dir / filename)

    @hookimpl
    def report_result(self, result: Any) -> None:
        self._submit(self._report_item, result)

    @hookimpl
    def report_container(self, container: Any) -> None:
        self._submit(self._report_item, container)

    @hookimpl
    def report_attached_data(self, body: Any, file_name: str) -> None:
        self._submit(super().report_attached_data, body, file_name)

    @hookimpl
    def report_globals(self, globals_item: Any) -> None:
        self._submit(self._report_item, globals_item)

    # report_attached_file stays synchronous: its source file may be gone by the time a
    # background thread would copy it.


def flush_all() -> None:
    """Write every file reported so far, in every background logger of this process."""
    for logger in list(_loggers):
        logger.flush()


def install() -> bool:
    """Make allure-pytest create a ``BackgroundFileLogger`` when it configures (it creates its
    file logger in its ``pytest_configure``, by the name ``AllureFileLogger`` of its plugin
    module). Returns whether allure-pytest is there."""
    try:
        from allure_pytest import plugin as allure_plugin
    except ImportError:
        return False
    allure_plugin.AllureFileLogger = BackgroundFileLogger
    return True


def uninstall() -> None:
    with contextlib.suppress(ImportError):
        from allure_pytest import plugin as allure_plugin

        allure_plugin.AllureFileLogger = AllureFileLogger


atexit.register(flush_all)
