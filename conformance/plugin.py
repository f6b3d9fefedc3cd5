"""The pytest plugin: options, parametrization, fixtures and hook wiring only.

Everything it calls lives in the package: the inventory loader, the contract registry
(which yields the cases and the suites' tests), the runtime that gathers facts, the outcome
policy, and the sinks.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import sys
import threading
from collections.abc import Generator
from pathlib import Path
from typing import Any, cast

import pytest

from conformance import outcomes, prefetch
from conformance.contracts import (
    CASE_FIXTURE,
    CHECK_ATTRIBUTE,
    Case,
    ContractSpec,
    Registry,
    activate,
    cases_of,
    load_registry,
)
from conformance.errors import InventoryError, RegistryError
from conformance.inventory.loader import INVENTORY_ENV, load_inventory
from conformance.inventory.model import Inventory
from conformance.probes import LanRequest
from conformance.results import Outcome, Result
from conformance.runtime import RunOptions, Runtime, new_run_id
from conformance.sinks import Sink, allure_writer
from conformance.sinks.categories import Acknowledgements, marked
from conformance.sinks.controller import (
    RESULT_PROPERTY,
    RUN_ID_KEY,
    Controller,
    bulletin_path,
    outcome_of,
    preload_store,
    run_sinks,
)
from conformance.snapshot import Snapshot
from conformance.transport.audit import AuditLog
from conformance.waivers import skip_reason
from conformance.workers import WorkerChoice, choose, usable_cpus

RUNTIME_KEY = pytest.StashKey[Runtime]()
REGISTRY_KEY = pytest.StashKey[Registry]()
SINKS_KEY = pytest.StashKey[list[Sink]]()
RESULT_KEY = pytest.StashKey[Result]()
CASE_KEY = pytest.StashKey[Case]()
# The controller's up-front gathering: whether it has started, and (under xdist) the
# private snapshot it publishes for the workers.
PREFETCH_KEY = pytest.StashKey[bool]()
SNAPSHOT_KEY = pytest.StashKey[Snapshot]()
WORKER_CHOICE_KEY = pytest.StashKey[WorkerChoice]()
LOADED_KEY = pytest.StashKey[tuple[Inventory, Registry]]()
ACKNOWLEDGED_KEY = pytest.StashKey[Acknowledgements]()


def checks_suites(args: list[str], testpaths: list[str]) -> bool:
    """Whether a run's paths (``args``, before pytest has made them the session's) are the
    suites: none (pytest then takes ``testpaths``), or each inside one of ``testpaths``."""
    if not args:
        return True
    roots = {Path(path).parts[0] for path in testpaths if Path(path).parts}
    return all(Path(arg.split("::")[0]).parts[:1] and Path(arg.split("::")[0]).parts[0] in roots for arg in args)


def _import_transport() -> None:
    # A background thread must never raise; a failed import is raised again where it is used.
    with contextlib.suppress(Exception):
        importlib.import_module("conformance.transport.connection")


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, args: list[str]) -> None:
    """Import the SSH transport (paramiko and its cryptography, about 0.25 s) in a thread as
    soon as the command line is known, for a run of the suites that may check hosts.

    This is before pytest reads the rest of its configuration, the harness loads the
    inventory and the registry, and collection: the first handshake then starts on an
    imported transport instead of importing it on the run's critical path. An xdist worker
    never connects (it reads the controller's snapshot), and a run of other tests (the
    harness's own, the benchmarks' trivial suite) or one that only shows information
    never needs it.
    """
    known = early_config.known_args_namespace
    if os.environ.get("PYTEST_XDIST_WORKER") or prefetch.checks_nothing_in(known):
        return
    paths = [str(arg) for arg in getattr(known, "file_or_dir", None) or []]
    if checks_suites(paths, early_config.getini("testpaths")):
        threading.Thread(target=_import_transport, name="import-transport", daemon=True).start()
        _start_gathering_at_preparse(early_config)


class _Preparsed:
    """A Config as far as ``pytest_load_initial_conftests`` knows it: the options pytest has
    pre-parsed (the command line, ``addopts`` and ``PYTEST_ADDOPTS``, with every loaded
    plugin's defaults), the paths given, and the config's own stash, ini and directories."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.option = config.known_args_namespace
        self.args = [str(arg) for arg in getattr(self.option, "file_or_dir", None) or []]
        self.stash = config.stash
        self.invocation_params = config.invocation_params
        self.rootpath = config.rootpath

    def getoption(self, name: str) -> Any:
        return getattr(self.option, name.lstrip("-").replace("-", "_"), None)

    def getini(self, name: str) -> Any:
        return self.config.getini(name)


def _start_gathering_at_preparse(early_config: pytest.Config) -> None:
    """A single-process run whose plan is the whole inventory (or its hosts and services)
    starts gathering as soon as pytest has pre-parsed its command line.

    That is before pytest reads the rest of its configuration, configures the other plugins
    and collects: the handshakes and the hosts' answers overlap with that work. The decision
    is the one ``pytest_cmdline_main`` and ``pytest_configure`` make later, on the same
    options, and what it loads (the inventory, the registry, the runtime) is what they use:
    a run with keywords, markers or paths, or one that will start workers, is left to them.
    """
    config = cast(pytest.Config, _Preparsed(early_config))
    if prefetch.checks_nothing(config) or not prefetch.selection_known_at_configure(config):
        return
    if getattr(config.option, "tx", None) or getattr(config.option, "looponfail", False):
        return
    try:
        inventory, registry = _loaded(config)
    except (InventoryError, RegistryError):
        return  # configure reports it (exit 4)
    asked = getattr(config.option, "numprocesses", None)
    if asked:
        if config.getoption("--conformance-force-workers"):
            return
        checks = sum(1 for case in registry.cases(inventory) if prefetch.selected(config, case))
        if choose(asked, checks, usable_cpus()):
            return  # workers: gathering starts at configure, with the snapshot they read
    config.stash[REGISTRY_KEY] = registry
    _start_gathering(config)


class ContractViolation(AssertionError):
    """The contract is violated; the message is the owner-readable rendering."""


class CheckBroken(Exception):
    """The contract could not be checked; the message names the cause."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance", "gateway conformance")
    group.addoption(
        "--inventory", default=None, help=f"inventory YAML (default: ${INVENTORY_ENV} or inventory/gateway.yaml)"
    )
    group.addoption("--site", default=None, help="site override YAML (default: $CONFORMANCE_SITE)")
    group.addoption("--bulletin", default=None, help="bulletin JSON Lines file (default: reports/bulletin.jsonl)")
    group.addoption(
        "--db",
        default=None,
        metavar="URL",
        help="system database URL, e.g. postgresql://user@host/db (default: $CONFORMANCE_DB or SQLite in reports/)",
    )
    group.addoption(
        "--conformance-host",
        action="append",
        default=[],
        metavar="HOST",
        help="only check these inventory hosts (repeatable)",
    )
    group.addoption(
        "--conformance-service",
        action="append",
        default=[],
        metavar="SERVICE",
        help="only check these inventory services (repeatable)",
    )
    group.addoption(
        "--model-health",
        action="store_true",
        help="also run health checks that make real model calls (LiteLLM /health)",
    )
    group.addoption(
        "--probe-routes",
        action="store_true",
        help="live route probe: one one-token completion per LiteLLM handle, to read where LiteLLM sends it",
    )
    group.addoption("--reports-dir", default=None, help="where reports and the audit log go (default: reports/)")
    group.addoption(
        "--conformance-force-workers",
        action="store_true",
        help="start exactly the -n N xdist workers, even where the plugin would run the checks in one process",
    )


def _project_dir(config: pytest.Config) -> Path:
    """Where inventory/ and reports/ are: the invocation directory when it has them.

    pytest's rootdir is the common ancestor of every path-like argument, so a site file
    elsewhere would move it; the directory the user runs from is what they mean.
    """
    invoked = config.invocation_params.dir
    return invoked if (invoked / "inventory").is_dir() else config.rootpath


def _inventory_path(config: pytest.Config) -> Path:
    value = config.getoption("--inventory") or os.environ.get(INVENTORY_ENV)
    return Path(value) if value else _project_dir(config) / "inventory" / "gateway.yaml"


def reports_dir(config: pytest.Config) -> Path:
    value = config.getoption("--reports-dir") or os.environ.get("CONFORMANCE_REPORTS")
    return Path(value) if value else _project_dir(config) / "reports"


def _runs_suites(config: pytest.Config) -> bool:
    """Whether this run checks hosts (the suites), rather than the harness's own tests."""
    args = [arg for arg in config.args if not arg.startswith("-")]
    return not args or not all("selftest" in Path(arg).parts for arg in args)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # Before allure-pytest and junitxml configure themselves: reports go to reports/ by default.
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is not None:
        # Workers re-parse the command line, so what the controller decided by default
        # (grouping, report locations) comes to them through workerinput.
        for name, value in workerinput.get("conformance_options", {}).items():
            setattr(config.option, name, value)
    elif _runs_suites(config):
        reports = reports_dir(config)
        if getattr(config.option, "allure_report_dir", None) is None and hasattr(config.option, "allure_report_dir"):
            config.option.allure_report_dir = str(reports / "allure-results")
            config.option.clean_alluredir = True
        if not getattr(config.option, "xmlpath", None):
            config.option.xmlpath = str(reports / "junit.xml")
    # allure-pytest configures after this hook: the harness records the run's Allure results
    # instead of its listener and writes them at the end of the session (conformance.sinks.allure_writer).
    allure_writer.take_over(config)
    try:
        inventory, registry = _loaded(config)
    except (InventoryError, RegistryError) as exc:
        # UsageError makes pytest exit with code 4 before collecting anything.
        raise pytest.UsageError(str(exc)) from None
    activate(registry, run_case)
    config.stash[REGISTRY_KEY] = registry
    _runtime(config)
    run_id = config.stash[RUN_ID_KEY]
    sinks = run_sinks(config, inventory, reports_dir(config), run_id)
    config.stash[SINKS_KEY] = sinks
    # The bulletin's current acknowledgements, read once per process on first use: an
    # acknowledged problem's message carries the marker Allure's categories sort it by.
    config.stash[ACKNOWLEDGED_KEY] = Acknowledgements(bulletin_path(config, reports_dir(config)))
    if workerinput is None:
        config.pluginmanager.register(Controller(sinks), "conformance-controller")
        if PREFETCH_KEY not in config.stash:
            _start_gathering(config)
    elif workerinput.get("conformance_snapshot"):
        config.stash[RUNTIME_KEY].read_snapshot(Snapshot(Path(workerinput["conformance_snapshot"])))
    if _runs_suites(config):
        _freeze_heap()  # the modules, the inventory and the registry; again after collection


def _runtime(config: pytest.Config) -> Runtime:
    """The run's runtime, made once per process: by configure, or earlier by the command-line
    wrapper when a single-process run can start gathering there (``_start_gathering_early``)."""
    if RUNTIME_KEY not in config.stash:
        inventory, _ = _loaded(config)
        workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
        run_id = workerinput["conformance_run_id"] if workerinput else new_run_id()
        config.stash[RUN_ID_KEY] = run_id
        audit = AuditLog(reports_dir(config) / "audit.jsonl", run_id)
        options = RunOptions(
            model_health=bool(config.getoption("--model-health")), probe_routes=bool(config.getoption("--probe-routes"))
        )
        config.stash[RUNTIME_KEY] = Runtime(inventory, audit, options)
    return config.stash[RUNTIME_KEY]


def _loaded(config: pytest.Config) -> tuple[Inventory, Registry]:
    """The inventory and the registry, loaded and checked once per process."""
    if LOADED_KEY not in config.stash:
        inventory = load_inventory(_inventory_path(config), config.getoption("--site"))
        registry = load_registry(_project_dir(config))
        registry.check_agreement(inventory)
        config.stash[LOADED_KEY] = inventory, registry
    return config.stash[LOADED_KEY]


@pytest.hookimpl(wrapper=True)
def pytest_cmdline_main(config: pytest.Config) -> Generator[None, int | pytest.ExitCode, int | pytest.ExitCode]:
    # A wrapper runs before xdist's own pytest_cmdline_main turns -n into workers.
    _choose_workers(config)
    _start_gathering_early(config)
    return (yield)


def _choose_workers(config: pytest.Config) -> None:
    """The plugin picks the number of workers for the suites, ``-n`` being a ceiling.

    See ``conformance.workers``: facts are gathered once, in the controller, so workers only
    pay off for many checks. ``--conformance-force-workers`` keeps ``-n N`` as given.
    """
    asked = getattr(config.option, "numprocesses", None)
    if not asked or hasattr(config, "workerinput") or not _runs_suites(config):
        return  # no -n, -n 0, a worker, or the harness's own tests: xdist decides
    if config.getoption("--conformance-force-workers") and isinstance(asked, int):
        config.stash[WORKER_CHOICE_KEY] = WorkerChoice(str(asked), asked, 0, forced=True)
        return
    try:
        inventory, registry = _loaded(config)
    except (InventoryError, RegistryError):
        config.option.numprocesses = 0  # configure stops the run with the error (exit 4)
        return
    checks = sum(1 for case in registry.cases(inventory) if prefetch.selected(config, case))
    workers = choose(asked, checks, usable_cpus())
    config.option.numprocesses = workers
    config.stash[WORKER_CHOICE_KEY] = WorkerChoice(str(asked), workers, checks)


def _start_gathering_early(config: pytest.Config) -> None:
    """A single-process run of the suites starts gathering here, before pytest configures
    the other plugins and collects: the hosts' answers then overlap with that work.

    Everything the plan needs is known at this point (the options are parsed, the inventory
    and the registry are loaded for the worker choice). Runs with workers start at configure
    instead, where the snapshot for the workers is made; a broken inventory is left for
    configure to report (exit 4).
    """
    if hasattr(config, "workerinput") or getattr(config.option, "numprocesses", None):
        return
    if PREFETCH_KEY in config.stash:
        return  # started at pytest_load_initial_conftests
    if getattr(config.option, "tx", None) or not _runs_suites(config):
        return
    if prefetch.checks_nothing(config) or not prefetch.selection_known_at_configure(config):
        return
    try:
        _, registry = _loaded(config)
    except (InventoryError, RegistryError):
        return
    config.stash[REGISTRY_KEY] = registry
    _start_gathering(config)


def _freeze_heap() -> None:
    """Move every object alive now out of the cyclic garbage collector's reach.

    What exists once the suites are collected (modules, the inventory, the registry, the
    items) lives until the process exits. Frozen (``gc.freeze``, Python 3.7+), it is no
    longer traversed by the collections that follow: the automatic ones while facts are
    parsed, the several pytest makes at unconfigure to find unraisable exceptions, and the
    interpreter's at exit. Measured on the lab: about 0.25 s of a 2 s run (README,
    Performance). Garbage that already exists is kept, which costs a few kilobytes.
    """
    gc.freeze()


def _distributed(config: pytest.Config) -> bool:
    return getattr(config.option, "dist", "no") != "no" and bool(getattr(config.option, "tx", None))


def _start_gathering(config: pytest.Config) -> None:
    """Controller: gather every selected host and make the LAN probes now, in threads.

    Under xdist the results go to a private snapshot the workers read (one SSH connection
    and one gathering per host per run, whatever the number of workers). When keywords,
    markers or paths narrow the run, the plan waits for the collected tests: in this
    process (``pytest_collection_finish``) or the first worker's (below).
    """
    if not _runs_suites(config) or prefetch.checks_nothing(config):
        return
    if _distributed(config):
        config.stash[SNAPSHOT_KEY] = Snapshot.create()
    if prefetch.selection_known_at_configure(config):
        runtime = _runtime(config)
        _prefetch(config, *prefetch.plan_at_configure(config, config.stash[REGISTRY_KEY], runtime))


def _prefetch(config: pytest.Config, hosts: list[str], requests: list[LanRequest]) -> None:
    config.stash[PREFETCH_KEY] = True
    if hosts:
        # Only a run that checks hosts records results; a run of tests that name no host
        # (the harness's own fixtures, the benchmark's trivial suite) never needs the store.
        preload_store()
    config.stash[RUNTIME_KEY].start_prefetch(hosts, requests, publish=config.stash.get(SNAPSHOT_KEY, None))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    """xdist controller: the first worker's collection is the run's selection; plan from it."""
    config = node.config
    if SNAPSHOT_KEY in config.stash and PREFETCH_KEY not in config.stash:
        runtime = config.stash[RUNTIME_KEY]
        cases = prefetch.cases_of_node_ids(config.stash[REGISTRY_KEY], runtime, ids)
        _prefetch(config, *prefetch.plan(config.stash[REGISTRY_KEY], runtime, cases))


def pytest_report_header(config: pytest.Config) -> str | None:
    choice = config.stash.get(WORKER_CHOICE_KEY, None)
    return choice.header() if choice is not None else None


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller hook: every worker shares the controller's run id."""
    config = node.config
    node.workerinput["conformance_run_id"] = config.stash[RUN_ID_KEY]
    if SNAPSHOT_KEY in config.stash:
        node.workerinput["conformance_snapshot"] = str(config.stash[SNAPSHOT_KEY].path)
    node.workerinput["conformance_options"] = {
        "allure_report_dir": allure_writer.results_folder(config),
        # Only the controller cleans the results folder, once, before any worker starts.
        "clean_alluredir": False,
    }


def pytest_unconfigure(config: pytest.Config) -> None:
    # Allure files that came after the session's end (the Allure sink waited for the rest).
    try:
        allure_writer.write_results(config)
    except OSError as exc:  # too late for the summary line: said on stderr
        sys.stderr.write(f"conformance: Allure results NOT all written: {exc}\n")
    runtime = config.stash.get(RUNTIME_KEY, None)
    if runtime is not None:
        runtime.close()
    if SNAPSHOT_KEY in config.stash:
        config.stash[SNAPSHOT_KEY].remove()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    check = getattr(metafunc.function, CHECK_ATTRIBUTE, None)
    runtime = metafunc.config.stash.get(RUNTIME_KEY, None)
    if check is None or runtime is None or CASE_FIXTURE not in metafunc.fixturenames:
        return
    spec = metafunc.config.stash[REGISTRY_KEY].get(check)
    cases = cases_of(spec, runtime.inventory)
    metafunc.parametrize(CASE_FIXTURE, cases, ids=[case.id for case in cases], indirect=True)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under the default distribution (-n without --dist), one worker per host."""
    runtime = config.stash.get(RUNTIME_KEY, None)
    explicit = any(arg.startswith("--dist") or arg == "-d" for arg in config.invocation_params.args)
    if runtime is None or explicit or config.option.dist != "load":
        return None
    from conformance.scheduling import HostScheduling

    registry = config.stash[REGISTRY_KEY]
    hosts = {case.id: case.host for case in registry.cases(runtime.inventory)}
    return HostScheduling(config, log, hosts)


@pytest.fixture(name=CASE_FIXTURE)
def conformance_case(request: pytest.FixtureRequest) -> Case:
    """The case a contract's test judges, bound to this run."""
    case: Case = request.param
    case.runtime = request.config.stash[RUNTIME_KEY]
    request.node.stash[CASE_KEY] = case
    return case


def run_case(item: pytest.Item, spec: ContractSpec, case: Case) -> Result:
    """Judge one case under the outcome policy and raise the pytest outcome it stands for.

    violated -> a failed test (an AssertionError, so Allure calls it "failed");
    broken   -> an error (CheckBroken; reported as ERROR, Allure "broken");
    skipped  -> a skipped test with the reason; passed -> nothing;
    waived   -> a violation under a current waiver: a skipped test with the justification.
    """
    __tracebackhide__ = True
    result = outcomes.evaluate(spec, case)
    item.stash[RESULT_KEY] = result
    for sink in item.config.stash[SINKS_KEY]:
        sink.on_test(case, result)
    if result.outcome is Outcome.SKIPPED:
        pytest.skip(result.summary)
    # Each problem's message leads with the marker of its kind (conformance.sinks.categories).
    if result.outcome is Outcome.WAIVED:
        pytest.skip(marked(skip_reason(result), result))
    problem = result.outcome in (Outcome.VIOLATED, Outcome.BROKEN)
    acknowledged = problem and item.config.stash[ACKNOWLEDGED_KEY].covers(result)
    if result.outcome is Outcome.VIOLATED:
        raise ContractViolation(marked(result.render(), result, acknowledged))
    if result.outcome is Outcome.BROKEN:
        raise CheckBroken(marked(result.render(), result, acknowledged))
    return result


def _case_of(item: pytest.Item) -> Case | None:
    callspec = getattr(item, "callspec", None)
    value = callspec.params.get(CASE_FIXTURE) if callspec is not None else None
    return value if isinstance(value, Case) else None


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """Single-process runs whose selection was not known at configure time: gather the
    collected tests' hosts and make their LAN probes at once, in threads."""
    config = session.config
    if _runs_suites(config):
        _freeze_heap()
    runtime = config.stash.get(RUNTIME_KEY, None)
    if runtime is None or getattr(config.option, "collectonly", False) or hasattr(config, "workerinput"):
        return
    if getattr(config.option, "dist", "no") != "no" or PREFETCH_KEY in config.stash:
        return  # the controller of an xdist run executes no test itself; or gathering started
    cases = [case for item in session.items if (case := _case_of(item)) is not None]
    _prefetch(config, *prefetch.plan(config.stash[REGISTRY_KEY], runtime, cases))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    hosts = set(config.getoption("--conformance-host"))
    services = set(config.getoption("--conformance-service"))
    selected, deselected = [], []
    for item in items:
        case = _case_of(item)
        if case is not None and (
            (hosts and case.host not in hosts)
            or (services and (case.service is None or case.service.name not in services))
        ):
            deselected.append(item)
            continue
        selected.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    result = item.stash.get(RESULT_KEY, None)
    if report.when == "call" and result is not None:
        report.user_properties.append((RESULT_PROPERTY, result.to_json()))
        if call.excinfo is not None and isinstance(call.excinfo.value, ContractViolation | CheckBroken):
            # The rendered result is the whole story; a Python traceback would only hide it.
            report.longrepr = str(call.excinfo.value)
    return report


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> tuple[str, str, str] | None:
    if report.when == "call" and report.failed and outcome_of(report) == "broken":
        return "error", "E", "ERROR"
    return None
