"""The source-of-truth contract: a scheduled run compares the owners' document (named by the
site) with the inventory, catching an edit nobody carried over; without a document it does
not apply."""

from __future__ import annotations

import pytest

from selftest.conftest import PROJECT_ROOT


def run(harness_project: pytest.Pytester, document_text: str | None) -> pytest.RunResult:
    site = harness_project.path / "site.yaml"
    if document_text is None:
        site.write_text("{}\n", encoding="utf-8")
    else:
        owners = harness_project.path / "owners"
        owners.mkdir(exist_ok=True)
        (owners / "gateway-layer.md").write_text(document_text, encoding="utf-8")
        site.write_text("layer:\n  document: owners/gateway-layer.md\n", encoding="utf-8")
    return harness_project.runpytest("-p", "no:randomly", "-rs", f"--site={site}", "-k", "source_of_truth")


def test_the_document_as_transcribed_passes(harness_project: pytest.Pytester) -> None:
    run(harness_project, (PROJECT_ROOT / "docs" / "gateway-layer.md").read_text(encoding="utf-8")).assert_outcomes(
        passed=1
    )


def test_a_document_edit_nobody_carried_over_is_a_violation(harness_project: pytest.Pytester) -> None:
    text = (PROJECT_ROOT / "docs" / "gateway-layer.md").read_text(encoding="utf-8")
    edited = text.replace("127.0.0.1:4020", "127.0.0.1:4030").replace("| 4020 |", "| 4030 |")
    assert edited != text
    result = run(harness_project, edited)
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "the owners' document and the inventory disagree" in out
    assert "4030" in out


def test_without_a_document_it_does_not_apply(harness_project: pytest.Pytester) -> None:
    result = run(harness_project, None)
    result.assert_outcomes(skipped=1)
    assert "no owners' document is named for this site (layer.document)" in result.stdout.str()
