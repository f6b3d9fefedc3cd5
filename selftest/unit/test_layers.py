"""The package's layers run one way: the pytest wiring (conformance.plugin) uses the
prefetch plan and the contract registry, never the other way round."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from conformance import contracts

PACKAGE = Path(contracts.__file__).resolve().parent.parent
# The modules below the pytest wiring: the registry (every contract module) and the prefetch plan.
LOWER_LAYERS = [*sorted((PACKAGE / "contracts").glob("*.py")), PACKAGE / "prefetch.py"]


def _imported(path: Path) -> set[str]:
    """Every module a file imports, at its top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("path", LOWER_LAYERS, ids=lambda path: path.name)
def test_registry_and_prefetch_never_import_the_plugin(path: Path) -> None:
    assert not {name for name in _imported(path) if name.startswith("conformance.plugin")}


@pytest.mark.parametrize("module", ["conformance.contracts", "conformance.prefetch"])
def test_imports_without_the_plugin(module: str) -> None:
    code = (
        "import sys, importlib\n"
        f"importlib.import_module({module!r})\n"
        "from conformance.contracts import load_registry\n"
        "assert len(load_registry()) > 0\n"
        "assert 'conformance.plugin' not in sys.modules, 'the plugin was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_generated_test_calls_the_judge_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = contracts.load_registry()
    spec = next(iter(registry))
    calls = []
    monkeypatch.setattr(contracts, "_active", [])
    monkeypatch.setattr(contracts, "_judges", [])
    contracts.activate(registry, lambda item, spec, case: calls.append((item, spec, case)))
    test = contracts.suite_tests(spec.suite)[spec.test_name]

    class Request:
        node = "the item"

    test(Request(), "the case")
    assert calls == [("the item", spec, "the case")]


def test_generated_test_without_a_judge_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = contracts.load_registry()
    spec = next(iter(registry))
    monkeypatch.setattr(contracts, "_judges", [])
    test = contracts._make_test(spec)

    class Request:
        node = None

    with pytest.raises(RuntimeError, match="through the conformance pytest plugin"):
        test(Request(), None)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], True),
        (["tests_hosts"], True),
        (["tests_hosts/test_hosts.py::test_port_bound", "tests_health"], True),
        (["selftest/unit"], False),
        (["selftest/plugin", "tests_hosts"], False),
        (["benchmarks/trivial_suite"], False),
    ],
)
def test_which_runs_import_the_transport_early(args: list[str], expected: bool) -> None:
    from conformance.plugin import checks_suites

    assert checks_suites(args, ["tests_hosts", "tests_contracts", "tests_health"]) is expected
