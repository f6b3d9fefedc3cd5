"""Allure's files written by a background thread: the same files, on disk once flushed."""

from __future__ import annotations

from pathlib import Path

import pytest
from allure_commons import model2
from allure_commons.logger import AllureFileLogger

from conformance.sinks import allure_files
from conformance.sinks.allure_files import BackgroundFileLogger


def _report(logger: AllureFileLogger) -> None:
    result = model2.TestResult(uuid="u1", name="test_x", fullName="suite#test_x", status=model2.Status.PASSED)
    result.attachments.append(model2.Attachment(name="evidence", source="a-attachment.txt", type="text/plain"))
    logger.report_attached_data(body="the evidence", file_name="a-attachment.txt")
    logger.report_attached_data(body=b"\x00bytes", file_name="b-attachment.bin")
    logger.report_result(result)
    logger.report_container(model2.TestResultContainer(uuid="c1", name="fixture", children=["u1"]))


def _contents(folder: Path) -> list[tuple[str, bytes]]:
    """Every file's name (results and containers are named by a random uuid: their suffix) and bytes."""
    return sorted(
        (path.name.split("-", 5)[-1] if path.suffix == ".json" else path.name, path.read_bytes())
        for path in folder.iterdir()
    )


def test_the_same_files_as_allure_commons_logger(tmp_path: Path) -> None:
    _report(AllureFileLogger(tmp_path / "sync"))
    background = BackgroundFileLogger(tmp_path / "background")
    _report(background)
    background.flush()
    assert _contents(tmp_path / "background") == _contents(tmp_path / "sync")
    assert not list((tmp_path / "background").glob("*.tmp"))


def test_a_failed_write_is_made_again_by_the_flush(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    logger = BackgroundFileLogger(tmp_path)
    failures = iter([OSError("disk full for a moment")])
    original = AllureFileLogger.report_attached_data

    def flaky(self: AllureFileLogger, body: object, file_name: str) -> None:
        error = next(failures, None)
        if error is not None:
            raise error
        original(self, body, file_name)

    monkeypatch.setattr(AllureFileLogger, "report_attached_data", flaky)
    logger.report_attached_data(body="kept", file_name="x-attachment.txt")
    logger.flush()
    assert (tmp_path / "x-attachment.txt").read_text() == "kept"


def test_a_write_that_keeps_failing_fails_the_flush(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    logger = BackgroundFileLogger(tmp_path)

    def broken(self: AllureFileLogger, body: object, file_name: str) -> None:
        raise OSError("read-only file system")

    monkeypatch.setattr(AllureFileLogger, "report_attached_data", broken)
    logger.report_attached_data(body="lost", file_name="y-attachment.txt")
    with pytest.raises(OSError, match="read-only"):
        logger.flush()


def test_flush_all_writes_every_logger(tmp_path: Path) -> None:
    loggers = [BackgroundFileLogger(tmp_path / str(index)) for index in range(3)]
    for logger in loggers:
        _report(logger)
    allure_files.flush_all()
    assert all(len(list((tmp_path / str(index)).iterdir())) == 4 for index in range(3))


def test_install_replaces_allure_pytests_file_logger_until_uninstalled() -> None:
    from allure_pytest import plugin as allure_plugin

    try:
        assert allure_files.install()
        assert allure_plugin.AllureFileLogger is BackgroundFileLogger
    finally:
        allure_files.uninstall()
    assert allure_plugin.AllureFileLogger is AllureFileLogger
