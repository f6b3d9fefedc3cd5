"""Shared helpers of the harness's own tests."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
INVENTORY_DIR = PROJECT_ROOT / "inventory"


@pytest.fixture
def gateway_yaml_text() -> str:
    return (INVENTORY_DIR / "gateway.yaml").read_text(encoding="utf-8")
