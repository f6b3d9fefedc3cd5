"""`conformance monitor`: start the System monitor (normally from its systemd unit)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from conformance.errors import InventoryError

EXIT_CONFIG = 4


def add_monitor_parser(sub: Any) -> None:
    monitor = sub.add_parser(
        "monitor", help="the System monitor: status page, /metrics, JSON API and health polls, on loopback"
    )
    monitor.add_argument(
        "--inventory", default=None, help="inventory file (default: $CONFORMANCE_INVENTORY or gateway)"
    )
    monitor.add_argument("--site", default=None, help="site override file (default: $CONFORMANCE_SITE)")
    monitor.add_argument(
        "--db",
        default=None,
        metavar="URL",
        help="system database (default: $CONFORMANCE_DB, else conformance.db beside the bulletin file)",
    )
    monitor.add_argument(
        "--bulletin",
        default=None,
        help="bulletin file to rewrite when a poll escalates "
        "(default: $CONFORMANCE_BULLETIN, else $CONFORMANCE_REPORTS/bulletin.jsonl)",
    )
    monitor.add_argument("--bind", default=None, help="address to bind (default: the inventory's; loopback only)")
    monitor.add_argument("--port", type=int, default=None, help="port (default: the inventory's; 0 picks a free one)")
    monitor.add_argument(
        "--allow-non-loopback",
        action="store_true",
        help="bind a non-loopback address; only together with an inventory port record that declares it",
    )
    monitor.add_argument(
        "--poll-interval",
        type=float,
        default=None,
        metavar="SECONDS",
        help="seconds between health polls (default: the inventory's poll_interval, else 30)",
    )
    monitor.add_argument(
        "--refresh-interval",
        type=float,
        default=None,
        metavar="SECONDS",
        help="seconds between reads of the database (default 5)",
    )
    monitor.add_argument(
        "--open-after-polls",
        type=int,
        default=None,
        metavar="N",
        help="failing polls in a row before a poll opens a bulletin entry "
        "(default: the inventory's open_after_polls, else 3)",
    )
    monitor.add_argument("--model-health", action="store_true", help="also poll checks that make model calls")
    monitor.add_argument("--no-poll", action="store_true", help="serve the database only; poll nothing")


def run_monitor_command(args: argparse.Namespace, project_root: Path) -> int:
    from conformance.inventory.loader import load_inventory
    from conformance.monitor.config import MonitorConfigError, build_config
    from conformance.monitor.service import Monitor
    from conformance.redact import register_secret
    from conformance.secrets import SecretSources
    from conformance.store.db import describe
    from conformance.store.session import open_store, resolve_url

    inventory_path = (
        args.inventory or os.environ.get("CONFORMANCE_INVENTORY") or project_root / "inventory" / "gateway.yaml"
    )
    site = args.site or os.environ.get("CONFORMANCE_SITE")
    try:
        inventory = load_inventory(inventory_path, site)
    except InventoryError as exc:
        print(f"conformance monitor: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    reports = Path(os.environ.get("CONFORMANCE_REPORTS") or project_root / "reports")
    bulletin = Path(args.bulletin or os.environ.get("CONFORMANCE_BULLETIN") or reports / "bulletin.jsonl")
    try:
        config = build_config(
            inventory,
            bind=args.bind,
            port=args.port,
            allow_non_loopback=args.allow_non_loopback,
            db_option=args.db,
            bulletin_file=bulletin,
            poll_seconds=args.poll_interval,
            refresh_seconds=args.refresh_interval,
            open_after_polls=args.open_after_polls,
            model_health=args.model_health,
            poll=not args.no_poll,
        )
    except MonitorConfigError as exc:
        print(f"conformance monitor: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    # Every secret any source holds is masked in every page, metric and log line, used or not.
    for value in SecretSources.of(inventory).all_values(inventory.secrets):
        register_secret(value)
    url = resolve_url(args.db, bulletin, inventory)
    monitor = Monitor(config, lambda: open_store(url), describe(url))
    try:
        return monitor.serve_forever()
    except OSError as exc:
        print(f"conformance monitor: cannot serve on {config.bind}:{config.port.port}: {exc}", file=sys.stderr)
        return 1
