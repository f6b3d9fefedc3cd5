"""The contract registry: one module per contract, collected here.

Each module of this package (and of a project's own ``contracts/`` folder, next to its
``inventory/``) that defines ``CONTRACT = ContractSpec(...)`` is a contract. Its id is the
one spelling used everywhere: the inventory's ``check:``, the module name (with ``_`` for
``-``), the test name, the Allure story and the bulletin fingerprint. Parametrization,
the LAN prefetch plan, the suites' tests and the owner-readable descriptions all come from
here, so adding a contract is one module and one inventory record (README: "Adding a
contract").

The inventory and the registry must agree, or collection fails (exit 4): a contract record
whose check has no module, or a module of the seed's contracts that an inventory with a
contracts table does not use, is an error, never a silent gap.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import pkgutil
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

from conformance.contracts.base import Case, ContractSpec, Scope, Suite, cases_of
from conformance.errors import RegistryError
from conformance.inventory.model import Inventory

__all__ = [
    "Case",
    "ContractSpec",
    "Registry",
    "Scope",
    "Suite",
    "cases_of",
    "load_registry",
    "suite_tests",
]

ID_RE = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
_INTERNAL_MODULES = {"base"}


class Registry:
    """The contracts of one run, by id."""

    def __init__(self, specs: Iterable[ContractSpec]) -> None:
        self._specs: dict[str, ContractSpec] = {}
        for spec in specs:
            if not ID_RE.fullmatch(spec.id):
                raise RegistryError(
                    f"contract id {spec.id!r} ({spec.module}) must be kebab-case, e.g. 'no-routing-loop'"
                )
            expected_module = spec.id.replace("-", "_")
            if spec.module and spec.module.rsplit(".", 1)[-1] != expected_module:
                raise RegistryError(
                    f"contract {spec.id!r} must live in a module named {expected_module}.py, not {spec.module}"
                )
            if spec.id in self._specs:
                raise RegistryError(
                    f"contract {spec.id!r} is defined twice: {self._specs[spec.id].module} and {spec.module}"
                )
            self._specs[spec.id] = spec

    def __iter__(self) -> Any:
        return iter(sorted(self._specs.values(), key=lambda spec: spec.id))

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, check: object) -> bool:
        return check in self._specs

    def get(self, check: str) -> ContractSpec:
        return self._specs[check]

    def of_suite(self, suite: Suite) -> list[ContractSpec]:
        return [spec for spec in self if spec.suite == suite]

    def cases(self, inventory: Inventory) -> list[Case]:
        return [case for spec in self for case in cases_of(spec, inventory)]

    def check_agreement(self, inventory: Inventory) -> None:
        """Raise RegistryError unless the inventory's contracts and the registry agree."""
        problems = []
        used = set()
        for contract in inventory.contracts:
            check = contract.check_id
            used.add(check)
            if check not in self._specs:
                known = [spec.id for spec in self if spec.scope.from_contracts_table]
                close = difflib.get_close_matches(check, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                problems.append(
                    f"contract {contract.id!r}: no implementation of check {check!r}{hint}; "
                    f"add conformance/contracts/{check.replace('-', '_')}.py or fix the record"
                )
            elif not self._specs[check].scope.from_contracts_table:
                problems.append(
                    f"contract {contract.id!r}: check {check!r} is derived from the inventory's tables "
                    "for every record already; it cannot be named by a contract"
                )
        if inventory.contracts:
            for spec in self:
                if spec.scope.from_contracts_table and spec.id not in used:
                    problems.append(
                        f"contract module {spec.module} ({spec.id!r}) is implemented but no contract in "
                        f"{inventory.source_path or 'the inventory'} uses it: add a contract record with "
                        f"check: {spec.id} or remove the module"
                    )
        if problems:
            raise RegistryError("the inventory and the contract registry disagree:\n  " + "\n  ".join(problems))


def _specs_of(module: ModuleType) -> list[ContractSpec]:
    spec = getattr(module, "CONTRACT", None)
    if spec is None:
        return []
    if not isinstance(spec, ContractSpec):
        raise RegistryError(f"{module.__name__}.CONTRACT is not a ContractSpec")
    if not spec.module:
        object.__setattr__(spec, "module", module.__name__)
    return [spec]


def _builtin_modules() -> list[ModuleType]:
    package_path = [str(Path(__file__).parent)]
    return [
        importlib.import_module(f"{__name__}.{info.name}")
        for info in sorted(pkgutil.iter_modules(package_path), key=lambda info: info.name)
        if info.name not in _INTERNAL_MODULES and not info.name.startswith("_")
    ]


def _project_modules(folder: Path) -> list[ModuleType]:
    """A project's own contracts: ``contracts/*.py`` next to its ``inventory/``."""
    modules = []
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        name = f"conformance_project_contracts.{path.stem}"
        if name in sys.modules:
            modules.append(sys.modules[name])
            continue
        loader_spec = importlib.util.spec_from_file_location(name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise RegistryError(f"cannot load contract module {path}")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[name] = module
        try:
            loader_spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[name]
            raise RegistryError(f"contract module {path} fails to import: {type(exc).__name__}: {exc}") from exc
        modules.append(module)
    return modules


def load_registry(project_dir: Path | None = None) -> Registry:
    """The built-in contracts, plus the project's own ``contracts/`` folder when it has one."""
    modules = _builtin_modules()
    if project_dir is not None and (project_dir / "contracts").is_dir():
        modules += _project_modules(project_dir / "contracts")
    return Registry(spec for module in modules for spec in _specs_of(module))


# --- the suites' tests, generated from the registry -------------------------------------

CASE_FIXTURE = "conformance_case"
CHECK_ATTRIBUTE = "conformance_check"


# How a generated test judges its case: ``judge(item, spec, case)``, given by whoever runs
# the suites (the pytest plugin passes its ``run_case`` to ``activate``). The registry only
# names the call, so it never imports the pytest wiring: the layers run one way, plugin ->
# prefetch -> registry.
Judge = Callable[[Any, ContractSpec, Case], object]


def _make_test(spec: ContractSpec) -> Callable[..., None]:
    def test(request: Any, conformance_case: Case) -> None:
        __tracebackhide__ = True
        _judge()(request.node, spec, conformance_case)

    test.__name__ = test.__qualname__ = spec.test_name
    test.__doc__ = f"{spec.statement}\n\n{spec.rule}".strip()
    setattr(test, CHECK_ATTRIBUTE, spec.id)
    return test


_active: list[Registry] = []
_judges: list[Judge] = []


def activate(registry: Registry, judge: Judge | None = None) -> None:
    """The registry of the run being configured, and how its tests judge a case (the plugin
    sets both before collection)."""
    _active[:] = [registry]
    if judge is not None:
        _judges[:] = [judge]


def _judge() -> Judge:
    if not _judges:
        raise RuntimeError("the suites' tests judge their cases through the conformance pytest plugin")
    return _judges[0]


def active_registry() -> Registry:
    return _active[0] if _active else load_registry(Path.cwd())


def suite_tests(suite: Suite) -> dict[str, Callable[..., None]]:
    """One test function per contract of ``suite``, named ``test_<id>``, for a suite module's globals."""
    registry = active_registry()
    return {spec.test_name: _make_test(spec) for spec in registry.of_suite(suite)}


def describe(registry: Registry, suite: Suite) -> str:
    """The owner-readable listing of a suite's contracts (each suite folder's README.md)."""
    titles = {"hosts": "Host contracts", "contracts": "The seed's contracts", "health": "Health checks"}
    lines = [
        f"# {titles[suite]}",
        "",
        "Generated from the contract registry (`conformance/contracts/`) by "
        "`conformance contracts --markdown`; a self-test keeps it current. Each test of this "
        "folder is one contract below, parametrized over its scope.",
        "",
    ]
    for spec in registry.of_suite(suite):
        lines += [
            f"## `{spec.id}`",
            "",
            f"*Scope*: {spec.scope.value}. *Test*: `{spec.test_name}`. *Module*: `{spec.module}`.",
            "",
            spec.statement,
            "",
        ]
        if spec.rule:
            lines += [spec.rule, ""]
    return "\n".join(lines).rstrip() + "\n"
