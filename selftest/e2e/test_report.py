"""The owners' view: a drifted lab run becomes an HTML report (the real Allure command line)
in which headless Chromium finds the failing contract under its service, with its owner
and its evidence attached."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess

import pytest

from selftest.e2e.conftest import generate_report

pytestmark = pytest.mark.lab

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _leaves(node: dict, path: tuple[str, ...] = ()):
    for child in node.get("children", []):
        if "children" in child:
            yield from _leaves(child, (*path, child["name"]))
        else:
            yield path, child


def _render(chromium: str, url: str, profile, extra: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=15000", *extra, url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _text(dom: str) -> str:
    dom = re.sub(r"<(script|style).*?</\1>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


def test_failing_contract_is_in_the_html_report_under_its_service_with_owner(run_suites, tmp_path):
    from lab import drift_apply, drift_reset

    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is installed by scripts/setup.sh"
    drift_apply("optillm-exposed")
    try:
        run = run_suites()
    finally:
        drift_reset()
    assert run.exit_code == 1
    output = tmp_path / "allure-report"
    generated = generate_report(run.reports / "allure-results", output)
    assert generated.returncode == 0, generated.stdout + generated.stderr
    index = output / "index.html"
    assert str(index) in generated.stdout

    html = index.read_text()
    behaviors = json.loads(base64.b64decode(re.search(r"d\('data/behaviors\.json','([^']+)'\)", html).group(1)))
    failing = [(path, leaf) for path, leaf in _leaves(behaviors) if leaf["status"] == "failed"]
    where = {leaf["name"]: path for path, leaf in failing}
    exposed = next(name for name in where if "test_optillm_never_exposed" in name)
    assert where[exposed] == ("Gateway layer", "optillm-proxy", "optillm-never-exposed")
    _, leaf = next((path, leaf) for path, leaf in failing if leaf["name"] == exposed)
    # Sorted under the owners' category, not Allure's "Product defects"; the runner is named.
    categories = json.loads(base64.b64decode(re.search(r"d\('data/categories\.json','([^']+)'\)", html).group(1)))
    by_category = {
        category["name"]: [leaf["name"] for _, leaf in _leaves(category)] for category in categories["children"]
    }
    assert exposed in by_category["Contract violated"] and "Product defects" not in by_category

    url = f"{index.as_uri()}#behaviors/{leaf['parentUid']}/{leaf['uid']}"
    dom = _render(chromium, url, tmp_path / "profile", ["--dump-dom"])
    assert dom.returncode == 0, dom.stderr[-2000:]
    text = _text(dom.stdout)
    for expected in (
        "Failed",
        "test_optillm_never_exposed",
        "Owner optillm-proxy",
        "Severity: critical",
        "host:mini",
        "optillm-proxy is EXPOSED beyond localhost",
        "OptiLLM is reachable only on localhost",
        "listening",
        "from the LAN",
    ):
        assert expected in text, f"{expected!r} not on the rendered page"
    shot = _render(
        chromium,
        url,
        tmp_path / "profile2",
        ["--screenshot=" + str(tmp_path / "report.png"), "--window-size=1400,1000"],
    )
    assert shot.returncode == 0 and (tmp_path / "report.png").stat().st_size > 10_000
