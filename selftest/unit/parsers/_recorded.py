"""Access to the recorded samples in selftest/recorded."""

from pathlib import Path

RECORDED = Path(__file__).resolve().parents[2] / "recorded"


def text(name: str) -> str:
    return (RECORDED / name).read_text(encoding="utf-8")


def data(name: str) -> bytes:
    return (RECORDED / name).read_bytes()
