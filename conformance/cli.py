"""`conformance ...`: the command line.

conformance inventory check PATH [--site FILE]   validate an inventory, list every problem
conformance inventory diff DOC [--inventory PATH] the owners' document vs the inventory, both ways
conformance run [PYTEST ARGS...]                  the main job: the suites with -n auto
conformance bulletin [--json] [--file PATH] [--db URL]   open bulletin entries
conformance bulletin ack FINGERPRINT --by OWNER --reason TEXT [--until WHEN]
                                                  acknowledge one: no reminders while it lasts
conformance db upgrade|status|import-bulletin     the system database
conformance report                                HTML report from the Allure results
conformance doctor [--site FILE] [--inventory FILE] [--host NAME]
                                                  can the harness reach and read each host? what to fix
conformance monitor [--inventory PATH] [--site FILE] [--db URL]
                                                  the System monitor: status page, /metrics, JSON API
conformance lab ...                               the local test hosts (root, Linux)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from conformance.bulletin import events
from conformance.bulletin.store import AcknowledgeError, open_problems, read_entries, utc_now
from conformance.errors import InventoryError
from conformance.inventory.loader import load_inventory
from conformance.store import cli as store_cli
from conformance.store.session import STORE_FAILURES, acknowledge_session, failure_text

PROJECT_ROOT = Path(__file__).resolve().parent.parent
EXIT_USAGE = 2


def _inventory_check(args: argparse.Namespace) -> int:
    try:
        inventory = load_inventory(args.path, args.site)
    except InventoryError as exc:
        print(exc, file=sys.stderr)
        return 1
    live = sum(1 for service in inventory.services if service.is_live)
    print(
        f"{args.path}: OK: layer {inventory.layer.name}, {len(inventory.hosts)} hosts, "
        f"{len(inventory.services)} services ({live} live), {len(inventory.ports)} ports, "
        f"{len(inventory.health_checks)} health checks, {len(inventory.contracts)} contracts, "
        f"{len(inventory.dependencies)} dependencies"
    )
    missing = [host.name for host in inventory.hosts if host.connection == "ssh" and not host.address]
    if missing:
        print(
            f"note: no address yet for {', '.join(missing)} (give them per site: --site FILE or "
            "CONFORMANCE_HOST_<NAME>_ADDRESS)"
        )
    return 0


def _inventory_diff(args: argparse.Namespace) -> int:
    """Exit 0 when the document and the inventory agree, 1 on any finding, 2 if unreadable."""
    from conformance.inventory.diff import diff_document, render
    from conformance.inventory.document import DocumentError, load_document
    from conformance.inventory.loader import load_located_inventory

    inventory_path = (
        args.inventory or os.environ.get("CONFORMANCE_INVENTORY") or PROJECT_ROOT / "inventory" / "gateway.yaml"
    )
    try:
        document = load_document(args.document)
        inventory, source = load_located_inventory(inventory_path, args.site)
    except (DocumentError, InventoryError, OSError) as exc:
        print(f"conformance inventory diff: {exc}", file=sys.stderr)
        return EXIT_USAGE
    findings = diff_document(document, inventory, source)
    if not findings:
        print(f"{args.document} and {inventory_path} agree")
        return 0
    print(render(findings))
    print(f"{len(findings)} disagreement(s) between {args.document} and {inventory_path}")
    return 1


def _bulletin_ack(args: argparse.Namespace, path: Path) -> int:
    try:
        entry, where = acknowledge_session(
            args.db, path, args.fingerprint, args.by, args.reason, args.until, tuple(store_cli._inventory_secrets())
        )
    except AcknowledgeError as exc:
        print(f"conformance bulletin ack: {exc}", file=sys.stderr)
        return 1
    except (ValueError, TimeoutError, *STORE_FAILURES) as exc:
        print(f"conformance bulletin ack: {failure_text(exc)}", file=sys.stderr)
        return 1
    until = entry[events.ACK_UNTIL] or "it resolves or changes"
    print(f"acknowledged {args.fingerprint} by {entry[events.ACK_BY]} until {until} (in {where})")
    return 0


def _bulletin(args: argparse.Namespace) -> int:
    path: Path | str = Path(
        args.file or os.environ.get("CONFORMANCE_BULLETIN") or PROJECT_ROOT / "reports" / "bulletin.jsonl"
    )
    if getattr(args, "bulletin_command", None) == "ack":
        return _bulletin_ack(args, Path(path))
    now = utc_now()
    try:
        if store_cli.configured(args.db):  # a system database named: it holds the bulletin's state
            problems, path = store_cli.open_entries_from(args.db)
        else:
            problems = open_problems(read_entries(Path(path)))
    except (ValueError, *STORE_FAILURES) as exc:
        print(f"conformance bulletin: {failure_text(exc)}", file=sys.stderr)
        return 1
    rows = sorted(problems.values(), key=lambda problem: problem.opened["time"])
    if args.json:
        listed = [
            {
                **problem.opened,
                "last_seen": problem.last["time"],
                "flapping": problem.flapping,
                events.ACKNOWLEDGED: problem.ack if problem.ack_active(now) else None,
            }
            for problem in rows
        ]
        print(json.dumps(listed, indent=2))
        return 0
    if not rows:
        print(f"no open entries in {path}")
        return 0
    acknowledged = sum(1 for problem in rows if problem.ack_active(now))
    print(f"{len(rows)} open entr{'y' if len(rows) == 1 else 'ies'} ({acknowledged} acknowledged) in {path}:")
    for problem in rows:
        entry = problem.opened
        since = _age(entry["time"])
        flapping = "FLAPPING " if problem.flapping else ""
        print(f"- {flapping}[{entry.get('severity', '?')}] {entry.get('owner', '?')}: {entry.get('summary', '')}")
        print(f"    since {entry['time']} ({since}); {entry['fingerprint']}")
        if problem.ack is not None and problem.ack_active(now):
            ack = problem.ack
            until = ack.get(events.ACK_UNTIL) or "it resolves or changes"
            print(f"    ACKNOWLEDGED by {ack.get(events.ACK_BY)} until {until}: {ack.get(events.ACK_REASON)}")
        if entry.get("blocked"):
            print(f"    blocks {len(entry['blocked'])} other check(s)")
    return 0


def _age(stamp: str) -> str:
    try:
        then = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "?"
    minutes = int((datetime.now(UTC) - then).total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60} min ago" if minutes >= 60 else f"{minutes} min ago"


def _run(args: argparse.Namespace) -> int:
    """The main job: the three suites against the site's hosts, or against the lab."""
    env = dict(os.environ)
    extra = list(args.pytest_args)
    if extra and extra[0] == "--":
        extra = extra[1:]
    site_given = (
        any(env.get(name) for name in ("CONFORMANCE_INVENTORY", "CONFORMANCE_SITE"))
        or any(name.startswith("CONFORMANCE_HOST_") for name in env)
        or any(arg.startswith(("--inventory", "--site")) for arg in extra)
    )
    if not site_given:
        print("no site given (CONFORMANCE_SITE, CONFORMANCE_HOST_*, --inventory): running against the lab")
        from lab.cli import prepare_for_run

        # Up only if it is down; a running or drifted lab is checked at once, never waited on.
        status = prepare_for_run()
        if status != 0:
            return status
        # The lab inventory names the lab's 0600 secrets file: nothing is exported.
        env["CONFORMANCE_INVENTORY"] = str(PROJECT_ROOT / "inventory" / "lab.yaml")
    # --rootdir: pytest otherwise derives it from path-like arguments (an inventory in /tmp
    # would move it and lose this project's testpaths and markers).
    command = [sys.executable, "-m", "pytest", f"--rootdir={PROJECT_ROOT}", "-n", "auto", *extra]
    return subprocess.call(command, cwd=PROJECT_ROOT, env=env)


def _doctor(args: argparse.Namespace) -> int:
    """Exit 0 when every step is ok, 1 when the operator has work, 4 for a broken inventory or site."""
    import time

    from conformance.doctor import EXIT_BROKEN_INVENTORY, render, run_doctor
    from conformance.transport.audit import AuditLog

    inventory_path = (
        args.inventory or os.environ.get("CONFORMANCE_INVENTORY") or PROJECT_ROOT / "inventory" / "gateway.yaml"
    )
    try:
        inventory = load_inventory(inventory_path, args.site)
    except (InventoryError, OSError) as exc:
        print(f"conformance doctor: {exc}", file=sys.stderr)
        return EXIT_BROKEN_INVENTORY
    unknown = [name for name in args.host if name not in {host.name for host in inventory.hosts}]
    if unknown:
        print(f"conformance doctor: no host {', '.join(unknown)} in {inventory_path}", file=sys.stderr)
        return EXIT_BROKEN_INVENTORY
    reports = Path(args.reports_dir or os.environ.get("CONFORMANCE_REPORTS") or PROJECT_ROOT / "reports")
    try:  # every command is audited, as in the suites: no audit log, no commands
        reports.mkdir(parents=True, exist_ok=True)
        with (reports / "audit.jsonl").open("a", encoding="utf-8"):
            pass
    except OSError as exc:
        print(
            f"conformance doctor: cannot write the audit log in {reports}: {exc}; pass --reports-dir", file=sys.stderr
        )
        return EXIT_BROKEN_INVENTORY
    audit = AuditLog(reports / "audit.jsonl", f"doctor-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    report = run_doctor(inventory, args.host, audit)
    print(render(report), end="")
    return report.exit_code


ALLURE_BIN = PROJECT_ROOT / ".tools" / "node_modules" / ".bin" / "allure"


def _report(args: argparse.Namespace) -> int:
    """The owners' HTML report, generated by the real Allure command line."""
    results = Path(args.results)
    output = Path(args.output)
    if not results.is_dir() or not any(results.glob("*-result.json")):
        print(f"conformance report: no Allure results in {results}; run the suites first", file=sys.stderr)
        return 1
    allure = Path(os.environ.get("CONFORMANCE_ALLURE", ALLURE_BIN))
    if not allure.exists():
        print(
            f"conformance report: the Allure command line is not installed ({allure}); run scripts/setup.sh",
            file=sys.stderr,
        )
        return 1
    from conformance.report_history import generate_with_history

    failure = generate_with_history(allure, results, output)
    if failure:
        print(f"conformance report: {failure}", file=sys.stderr)
        return 1
    print(f"report: {(output / 'index.html').resolve()}")
    return 0


SUITE_FOLDERS = {"hosts": "tests_hosts", "contracts": "tests_contracts", "health": "tests_health"}


def _contracts(args: argparse.Namespace) -> int:
    from conformance.contracts import describe, load_registry

    registry = load_registry(Path.cwd())
    if args.write_readmes:
        for suite, folder in SUITE_FOLDERS.items():
            path = PROJECT_ROOT / folder / "README.md"
            path.write_text(describe(registry, suite), encoding="utf-8")  # type: ignore[arg-type]
            print(f"wrote {path}")
        return 0
    for spec in registry:
        print(f"{spec.id:30} {spec.suite:10} {spec.scope.value:17} {spec.statement}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="conformance", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    inventory = sub.add_parser("inventory", help="inventory tools")
    inventory_sub = inventory.add_subparsers(dest="inventory_command", metavar="ACTION", required=True)
    check = inventory_sub.add_parser("check", help="validate an inventory and print every problem")
    check.add_argument("path")
    check.add_argument("--site", default=None, help="site override file to apply")
    diff = inventory_sub.add_parser("diff", help="compare the owners' document (gateway-layer.md) with the inventory")
    diff.add_argument("document", help="the owners' document, e.g. docs/gateway-layer.md")
    diff.add_argument("--inventory", default=None, help="inventory file (default: inventory/gateway.yaml)")
    diff.add_argument("--site", default=None, help="site override file to apply")
    run = sub.add_parser("run", help="run the suites (pytest -n auto); against the lab if no site is given")
    run.add_argument("pytest_args", nargs=argparse.REMAINDER)
    bulletin = sub.add_parser("bulletin", help="print the open bulletin entries; ack one")
    bulletin.add_argument("--json", action="store_true")
    bulletin.add_argument("--file", default=None)
    bulletin.add_argument(
        "--db", default=None, metavar="URL", help="read the system database (default: $CONFORMANCE_DB)"
    )
    bulletin_sub = bulletin.add_subparsers(dest="bulletin_command", metavar="ACTION", required=False)
    ack = bulletin_sub.add_parser("ack", help="acknowledge an open entry: no reminders while it lasts")
    ack.add_argument("fingerprint", help="the entry's fingerprint (conformance bulletin prints it)")
    ack.add_argument("--by", required=True, help="who takes it on (an owner)")
    ack.add_argument("--reason", required=True)
    ack.add_argument("--until", default=None, help="90m, 8h, 3d, 2w or an ISO date/time; default: until it resolves")
    ack.add_argument("--file", default=argparse.SUPPRESS)
    ack.add_argument("--db", default=argparse.SUPPRESS, metavar="URL")
    contracts = sub.add_parser("contracts", help="list the registered contracts (id, suite, scope, statement)")
    contracts.add_argument(
        "--write-readmes", action="store_true", help="regenerate tests_*/README.md from the registry"
    )
    report = sub.add_parser("report", help="generate the HTML report from the Allure results")
    report.add_argument("--results", default=str(PROJECT_ROOT / "reports" / "allure-results"))
    report.add_argument("--output", default=str(PROJECT_ROOT / "reports" / "allure-report"))
    doctor = sub.add_parser("doctor", help="check each host step by step (address, key, login, sudo, files, secrets)")
    doctor.add_argument("--inventory", default=None, help="inventory file (default: $CONFORMANCE_INVENTORY or gateway)")
    doctor.add_argument("--site", default=None, help="site override file to apply (default: $CONFORMANCE_SITE)")
    doctor.add_argument("--host", action="append", default=[], metavar="NAME", help="only this host (repeatable)")
    doctor.add_argument(
        "--reports-dir", default=None, help="where the audit log goes (default: $CONFORMANCE_REPORTS or reports/)"
    )
    from lab.cli import add_lab_parser  # the lab is its own package; `conformance lab` delegates to it

    add_lab_parser(sub)
    store_cli.add_db_parser(sub)
    from conformance.monitor.cli import add_monitor_parser

    add_monitor_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "inventory":
        return _inventory_diff(args) if args.inventory_command == "diff" else _inventory_check(args)
    if args.command == "bulletin":
        return _bulletin(args)
    if args.command == "run":
        return _run(args)
    if args.command == "report":
        return _report(args)
    if args.command == "contracts":
        return _contracts(args)
    if args.command == "doctor":
        return _doctor(args)
    if args.command == "lab":
        from lab.cli import run_lab_command

        return run_lab_command(args)
    if args.command == "db":
        return store_cli.run_db_command(args)
    if args.command == "monitor":
        from conformance.monitor.cli import run_monitor_command

        return run_monitor_command(args, PROJECT_ROOT)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
