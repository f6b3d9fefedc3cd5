"""A snapshot as the JSON documents agents read and the status page owners read (pure functions).

The JSON documents are versioned (``schema`` and ``version`` fields; the JSON Schemas are
``schemas/status-v1.json`` and ``schemas/bulletin-v1.json``): a field is only ever added
within a version; renaming or removing one makes version 2, served beside version 1. Every
text field passes ``redact`` once more on its way out, although the database holds redacted
text only: a page must not be the one place a secret could surface.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from conformance.bulletin import events
from conformance.bulletin.store import OpenProblem
from conformance.inventory.model import Inventory
from conformance.monitor.state import CELL_SECONDS, OUTCOME_RANK, CheckState, Snapshot, cell_of
from conformance.redact import redact

STATUS_SCHEMA = "gateway-conformance/monitor-status"
BULLETIN_SCHEMA = "gateway-conformance/monitor-bulletin"
API_VERSION = 1
FAILING = ("violated", "broken")
WORST_FIRST = ("violated", "broken", "waived", "passed", "skipped")


class FilterError(ValueError):
    """A query the API does not know: the message says which parameter and what it takes."""


def stamp(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment is not None else None


def _text(value: object) -> str:
    return redact(str(value)) if value is not None else ""


def _parse_time(text: object) -> datetime | None:
    try:
        return datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def worst(outcomes: Iterable[str]) -> str | None:
    present = set(outcomes)
    return next((outcome for outcome in WORST_FIRST if outcome in present), None)


# --- the status document -------------------------------------------------------------------

STATUS_FILTERS = ("owner", "service", "host", "state", "checks")
BULLETIN_FILTERS = ("owner", "service", "host", "state", "severity")
BULLETIN_STATES = ("open", "acknowledged", "flapping")


@dataclass(frozen=True)
class Filters:
    values: Mapping[str, frozenset[str]]

    def admits(self, **fields: str | None) -> bool:
        return all(fields.get(name) in wanted for name, wanted in self.values.items())


def parse_filters(query: Mapping[str, Sequence[str]], allowed: Sequence[str], states: Sequence[str]) -> Filters:
    values: dict[str, frozenset[str]] = {}
    for name, given in query.items():
        if name not in allowed:
            raise FilterError(f"unknown parameter {name!r}: this endpoint filters by {', '.join(allowed)}")
        wanted = frozenset(item for value in given for item in value.split(",") if item)
        if not wanted:
            raise FilterError(f"parameter {name!r} is empty")
        if name == "state" and not wanted <= set(states):
            raise FilterError(f"state {', '.join(sorted(wanted - set(states)))!r}: one of {', '.join(states)}")
        values[name] = wanted
    return Filters(values)


def _check_json(check: CheckState) -> dict[str, Any]:
    return {
        "fingerprint": check.fingerprint,
        "contract": check.contract or check.check,
        "check": check.check,
        "host": check.host,
        "service": check.service,
        "port": check.port,
        "item": check.item,
        "owner": check.owner,
        "severity": check.severity,
        "state": check.outcome,
        "summary": _text(check.summary)[:500],
        "since": stamp(check.since),
        "checked_at": stamp(check.checked_at),
        "runner": check.runner,
        "run": check.run,
        "blocked_by": check.blocked_by,
    }


def contract_rows(checks: Sequence[CheckState]) -> list[dict[str, Any]]:
    """One row per contract: how many of its checks are in each state, the worst, and since when."""
    grouped: dict[str, list[CheckState]] = {}
    for check in checks:
        grouped.setdefault(check.contract or check.check, []).append(check)
    rows = []
    for contract, members in sorted(grouped.items()):
        state = worst(check.outcome for check in members) or "unknown"
        counts: dict[str, int] = {}
        for check in members:
            counts[check.outcome] = counts.get(check.outcome, 0) + 1
        since = min((c.since for c in members if c.outcome == state and c.since is not None), default=None)
        rows.append(
            {"contract": contract, "state": state, "since": stamp(since), "checks": len(members), "by_state": counts}
        )
    return rows


def status_document(
    snapshot: Snapshot,
    inventory: Inventory,
    filters: Filters | None = None,
    expected_run_hours: float = 1.0,
    every: bool = False,
) -> dict[str, Any]:
    filters = filters or Filters({})
    matching = [
        check
        for check in snapshot.checks
        if filters.admits(owner=check.owner, service=check.service, host=check.host, state=check.outcome)
    ]
    # Every check only when asked (``checks=all``) or narrowed by state: the default answer is
    # what an agent acts on, and stays small at 200 hosts (a few KB, not megabytes).
    listed = matching if every or "state" in filters.values else [c for c in matching if c.outcome in FAILING]
    checks = matching
    by_service: dict[str, list[CheckState]] = {}
    for check in snapshot.checks:
        by_service.setdefault(check.service or "", []).append(check)
    # A service's state is the worst of its checks' last outcomes, the suites' and the monitor's
    # own health polls alike (each the newer of the two for a health check).
    polled: dict[str, list[tuple[str, datetime | None]]] = {}
    for item in snapshot.health:
        if item.last_status is not None:
            polled.setdefault(item.service, []).append((item.last_status, item.last_changed))
    services = []
    for service in inventory.services:
        owner = inventory.owner_of(service)
        members = by_service.get(service.name, [])
        states = [(check.outcome, check.since) for check in members] + polled.get(service.name, [])
        state = service.state if not service.is_live else (worst(outcome for outcome, _ in states) or "unknown")
        if not filters.admits(owner=owner, service=service.name, host=service.host, state=state):
            continue
        since = min((moment for outcome, moment in states if outcome == state and moment is not None), default=None)
        services.append(
            {
                "name": service.name,
                "title": service.title,
                "host": service.host,
                "owner": owner,
                "lifecycle": service.state,
                "state": state,
                "since": stamp(since),
                "checks": len(members),
            }
        )
    counts = {outcome: 0 for outcome in WORST_FIRST}
    for check in checks:
        counts[check.outcome] = counts.get(check.outcome, 0) + 1
    now = snapshot.read_at
    runners = []
    for runner in snapshot.runners:
        age = (now - runner.finished_at).total_seconds()
        runners.append(
            {
                "runner": runner.runner,
                "run": runner.run,
                "started_at": stamp(runner.started_at),
                "finished_at": stamp(runner.finished_at),
                "seconds": round(runner.seconds, 3) if runner.seconds is not None else None,
                "complete": runner.complete,
                "counts": dict(runner.counts),
                "age_seconds": round(age, 1),
                "overdue": age > expected_run_hours * 3600,
            }
        )
    health = [
        {
            "id": item.id,
            "service": item.service,
            "host": item.host,
            "port": item.port,
            "url": item.url,
            "vantage": item.vantage,
            "state": item.last_status,
            "summary": _text(item.last_summary)[:500] if item.last_summary else None,
            "latency_ms": item.latency_ms,
            "last_checked": stamp(item.last_checked),
            "last_changed": stamp(item.last_changed),
            "last_run": item.last_run,
        }
        for item in snapshot.health
        if filters.admits(
            owner=inventory.owner_of(inventory.service(item.service)) if _known(inventory, item.service) else None,
            service=item.service,
            host=item.host,
            state=item.last_status,
        )
    ]
    newest = snapshot.newest_run_at
    return {
        "schema": STATUS_SCHEMA,
        "version": API_VERSION,
        "generated_at": stamp(snapshot.read_at),
        "layer": inventory.layer.name,
        "stale": snapshot.stale,
        "error": snapshot.error,
        "stale_since": stamp(snapshot.stale_since),
        "summary": {
            "checks": len(checks),
            "by_state": counts,
            "open_entries": len(snapshot.problems),
            "newest_run_at": stamp(newest),
            "newest_run_age_seconds": round((now - newest).total_seconds(), 1) if newest else None,
        },
        "services": services,
        "contracts": contract_rows(checks),
        "checks_listed": "all" if len(listed) == len(checks) else "failing",
        "checks": [_check_json(check) for check in listed],
        "health_checks": health,
        "runners": runners,
    }


def _known(inventory: Inventory, service: str) -> bool:
    return any(record.name == service for record in inventory.services)


# --- the bulletin document -----------------------------------------------------------------


def problem_state(problem: OpenProblem, now: datetime) -> str:
    if problem.flapping:
        return "flapping"
    return "acknowledged" if problem.ack_active(now) else "open"


def _entry_json(problem: OpenProblem, now: datetime) -> dict[str, Any]:
    opened = problem.opened
    opened_at = _parse_time(opened.get("time"))
    ack = problem.ack if problem.ack_active(now) else None
    return {
        "fingerprint": problem.fingerprint,
        "state": problem_state(problem, now),
        "owner": opened.get("owner"),
        "severity": opened.get("severity"),
        "host": opened.get("host"),
        "service": opened.get("service"),
        "contract": opened.get("contract"),
        "outcome": opened.get("outcome"),
        "summary": _text(opened.get("summary"))[:500],
        "opened_at": stamp(opened_at),
        "age_seconds": round((now - opened_at).total_seconds(), 1) if opened_at else None,
        "last_event": problem.last.get("event"),
        "last_event_at": problem.last.get("time"),
        "opened_by_run": opened.get("run"),
        "contracts": list(opened.get(events.CONTRACTS) or [opened.get("contract")]),
        "blocked": list(opened.get("blocked") or []),
        "acknowledgement": (
            {
                "by": _text(ack.get(events.ACK_BY)),
                "reason": _text(ack.get(events.ACK_REASON)),
                "until": ack.get(events.ACK_UNTIL),
            }
            if ack is not None
            else None
        ),
    }


def bulletin_document(snapshot: Snapshot, inventory: Inventory, filters: Filters | None = None) -> dict[str, Any]:
    filters = filters or Filters({})
    now = snapshot.read_at
    entries = [
        _entry_json(problem, now)
        for problem in sorted(snapshot.problems.values(), key=lambda p: str(p.opened.get("time", "")))
    ]
    entries = [
        entry
        for entry in entries
        if filters.admits(
            owner=entry["owner"],
            service=entry["service"],
            host=entry["host"],
            state=entry["state"],
            severity=entry["severity"],
        )
    ]
    today = now.date()
    waivers = [
        {
            "contract": waiver.contract,
            "subject": waiver.subject,
            "owner": waiver.owner,
            "justification": _text(waiver.justification),
            "expires": waiver.expires.isoformat(),
            "expired": waiver.expires <= today,
        }
        for waiver in inventory.waivers
        if waiver.owner in filters.values.get("owner", frozenset({waiver.owner}))
    ]
    return {
        "schema": BULLETIN_SCHEMA,
        "version": API_VERSION,
        "generated_at": stamp(now),
        "layer": inventory.layer.name,
        "stale": snapshot.stale,
        "error": snapshot.error,
        "entries": entries,
        "waivers": waivers,
    }


def dumps(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


# --- the status page -----------------------------------------------------------------------

COLOURS = {
    "passed": "#2e7d32",
    "violated": "#c62828",
    "broken": "#ef6c00",
    "waived": "#6a1b9a",
    "skipped": "#9e9e9e",
}
STYLE = """
body{font:15px/1.4 system-ui,-apple-system,Segoe UI,sans-serif;margin:0 auto;max-width:72rem;padding:.75rem;color:#222}
h1{font-size:1.3rem;margin:.2rem 0}h2{font-size:1.1rem;margin:1.2rem 0 .4rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;width:100%}td,th{padding:.25rem .4rem;border-bottom:1px solid #eee;
text-align:left;vertical-align:top}th{font-weight:600;background:#fafafa}
.state{font-weight:700;white-space:nowrap}.passed{color:#2e7d32}.violated{color:#c62828}.broken{color:#ef6c00}
.waived{color:#6a1b9a}.skipped,.muted{color:#777}.banner{padding:.6rem;border-radius:.3rem;margin:.5rem 0}
.stale{background:#fff3e0;border:1px solid #ef6c00}.ok{background:#e8f5e9;border:1px solid #2e7d32}
.bad{background:#ffebee;border:1px solid #c62828}svg{display:block}.wrap{overflow-x:auto}
code{font-size:.85em;word-break:break-all}
@media (max-width:40rem){.wide{display:none}td,th{padding:.2rem}}
"""


def _e(value: object) -> str:
    return html.escape(_text(value), quote=True)


def _ago(then: datetime | None, now: datetime) -> str:
    if then is None:
        return "unknown"
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def strip_svg(cells: Mapping[int, str], now: datetime, hours: float) -> str:
    """The last ``hours`` of one check as cells of half an hour, oldest left, the worst outcome each."""
    count = max(1, int(hours * 3600 // CELL_SECONDS))
    last = cell_of(now)
    width = 4
    rects = []
    index = 0
    while index < count:  # one rectangle per run of equal cells: a steady day is one element
        outcome = cells.get(last - count + 1 + index)
        length = 1
        while index + length < count and cells.get(last - count + 1 + index + length) == outcome:
            length += 1
        colour = COLOURS.get(outcome or "", "#eeeeee")
        rects.append(
            f'<rect x="{index * width}" y="0" width="{length * width - 1}" height="12" fill="{colour}">'
            f"<title>{outcome or 'no run'}</title></rect>"
        )
        index += length
    label = f"last {hours:g} h, half-hour cells, oldest left"
    return (
        f'<svg role="img" aria-label="{label}" width="{count * width}" height="12" '
        f'viewBox="0 0 {count * width} 12">{"".join(rects)}</svg>'
    )


def status_page(snapshot: Snapshot, inventory: Inventory, history_hours: float, expected_run_hours: float) -> str:
    now = snapshot.read_at
    doc = status_document(snapshot, inventory, expected_run_hours=expected_run_hours)
    bulletin = bulletin_document(snapshot, inventory)
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta http-equiv="refresh" content="30">',
        f"<title>{_e(inventory.layer.title)}: conformance</title><style>{STYLE}</style></head><body>",
        f"<h1>{_e(inventory.layer.title)}: conformance, as the system database says</h1>",
        f'<p class="muted">Read {_e(stamp(now))} from {_e(snapshot.database)}. Layer owner: '
        f"{_e(inventory.layer.owner)}. This page refreshes every 30 s; it never changes anything.</p>",
    ]
    if snapshot.stale:
        parts.append(
            f'<div class="banner stale" id="stale"><strong>STALE</strong>: the database cannot be read '
            f"({_e(snapshot.error)}) since {_e(stamp(snapshot.stale_since))}; below is the last known state.</div>"
        )
    failing = [check for check in snapshot.checks if check.outcome in FAILING]
    banner = "bad" if failing or bulletin["entries"] else "ok"
    parts.append(
        f'<div class="banner {banner}" id="summary">{len(failing)} failing of {doc["summary"]["checks"]} checks; '
        f"{len(bulletin['entries'])} open bulletin entries; newest run "
        f"{_e(_ago(snapshot.newest_run_at, now) + ' ago' if snapshot.newest_run_at else 'never')}.</div>"
    )
    # Services
    parts.append(
        '<h2>Services</h2><div class="wrap"><table id="services"><tr><th>service</th><th>host</th>'
        "<th>owner</th><th>state</th><th>since</th></tr>"
    )
    for service in doc["services"]:
        since = _parse_time(service["since"])
        parts.append(
            f'<tr data-service="{_e(service["name"])}"><td>{_e(service["title"])}</td><td>{_e(service["host"])}</td>'
            f'<td>{_e(service["owner"])}</td><td class="state {_e(service["state"])}">{_e(service["state"])}</td>'
            f"<td>{_e(_ago(since, now) + ' ago' if since else '')}</td></tr>"
        )
    parts.append("</table></div>")
    # Open bulletin entries
    parts.append(
        '<h2>Open bulletin entries</h2><div class="wrap"><table id="bulletin"><tr><th>entry</th>'
        '<th>owner</th><th>severity</th><th>state</th><th>age</th><th class="wide">summary</th></tr>'
    )
    if not bulletin["entries"]:
        parts.append('<tr><td colspan="6" class="muted">none</td></tr>')
    for entry in bulletin["entries"]:
        ack = entry["acknowledgement"]
        state = entry["state"] + (f" by {ack['by']} until {ack['until'] or 'it resolves'}" if ack else "")
        parts.append(
            f'<tr data-fingerprint="{_e(entry["fingerprint"])}"><td><code>{_e(entry["fingerprint"])}</code></td>'
            f"<td>{_e(entry['owner'])}</td><td>{_e(entry['severity'])}</td><td>{_e(state)}</td>"
            f"<td>{_e(_ago(_parse_time(entry['opened_at']), now))}</td>"
            f'<td class="wide">{_e(entry["summary"])}</td></tr>'
        )
    parts.append("</table></div>")
    # Waivers
    parts.append(
        '<h2>Waivers</h2><div class="wrap"><table id="waivers"><tr><th>contract</th><th>subject</th>'
        '<th>owner</th><th>expires</th><th class="wide">justification</th></tr>'
    )
    if not bulletin["waivers"]:
        parts.append('<tr><td colspan="5" class="muted">none</td></tr>')
    for waiver in bulletin["waivers"]:
        expiry = waiver["expires"] + (" (EXPIRED)" if waiver["expired"] else "")
        parts.append(
            f"<tr><td>{_e(waiver['contract'])}</td><td><code>{_e(waiver['subject'])}</code></td>"
            f"<td>{_e(waiver['owner'])}</td><td>{_e(expiry)}</td>"
            f'<td class="wide">{_e(waiver["justification"])}</td></tr>'
        )
    parts.append("</table></div>")
    # Runners
    parts.append(
        '<h2>Runners</h2><div class="wrap"><table id="runners"><tr><th>runner</th><th>last run</th>'
        "<th>took</th><th>passed / failed / broken</th></tr>"
    )
    if not doc["runners"]:
        parts.append('<tr><td colspan="4" class="muted">no run recorded yet</td></tr>')
    for runner in doc["runners"]:
        finished = _parse_time(runner["finished_at"])
        late = " (overdue)" if runner["overdue"] else ""
        took = f"{runner['seconds']:.1f} s" if runner["seconds"] is not None else "unknown"
        counts = runner["counts"]
        parts.append(
            f"<tr><td>{_e(runner['runner'])}</td><td>{_e(_ago(finished, now))} ago{_e(late)}</td><td>{_e(took)}</td>"
            f"<td>{counts['passed']} / {counts['violated']} / {counts['broken']}</td></tr>"
        )
    parts.append("</table></div>")
    # Health checks
    parts.append(
        '<h2>Health checks</h2><div class="wrap"><table id="health"><tr><th>check</th><th>state</th>'
        '<th>latency</th><th>since</th><th class="wide">url</th></tr>'
    )
    for item in doc["health_checks"]:
        latency = f"{item['latency_ms']:.0f} ms" if item["latency_ms"] is not None else ""
        changed = _parse_time(item["last_changed"])
        state = item["state"] or "not checked yet"
        parts.append(
            f'<tr data-health="{_e(item["id"])}"><td>{_e(item["id"])}</td>'
            f'<td class="state {_e(state)}">{_e(state)}</td>'
            f"<td>{_e(latency)}</td><td>{_e(_ago(changed, now) if changed else '')}</td>"
            f'<td class="wide"><code>{_e(item["url"])}</code></td></tr>'
        )
    parts.append("</table></div>")
    # Contracts, one row each, with the history strip of all their checks (the worst each half hour)
    parts.append(
        f'<h2>Contracts (last {history_hours:g} h)</h2><div class="wrap"><table id="contracts"><tr>'
        '<th>contract</th><th>state</th><th>checks</th><th>since</th><th class="wide">history</th></tr>'
    )
    by_contract: dict[str, list[CheckState]] = {}
    for check in snapshot.checks:
        by_contract.setdefault(check.contract or check.check, []).append(check)
    for row in doc["contracts"]:
        cells: dict[int, str] = {}
        for check in by_contract.get(row["contract"], []):
            for cell, outcome in snapshot.strips.get(check.fingerprint, {}).items():
                if OUTCOME_RANK.get(outcome, 0) > OUTCOME_RANK.get(cells.get(cell, ""), 0):
                    cells[cell] = outcome
        since = _parse_time(row["since"])
        held = f"{_ago(since, now)} ago" if since else f"over {history_hours:g} h"
        counts = ", ".join(f"{count} {state}" for state, count in sorted(row["by_state"].items()))
        parts.append(
            f'<tr data-contract="{_e(row["contract"])}"><td>{_e(row["contract"])}</td>'
            f'<td class="state {_e(row["state"])}">{_e(row["state"])}</td><td>{_e(counts)}</td><td>{_e(held)}</td>'
            f'<td class="wide">{strip_svg(cells, now, history_hours)}</td></tr>'
        )
    parts.append("</table></div>")
    # Each check that does not hold, with its own strip
    parts.append(
        '<h2>Checks that do not hold</h2><div class="wrap"><table id="checks"><tr>'
        '<th>contract</th><th>subject</th><th>owner</th><th>state</th><th>since</th><th class="wide">history</th></tr>'
    )
    failing_checks = [check for check in snapshot.checks if check.outcome in FAILING]
    if not failing_checks:
        parts.append('<tr><td colspan="6" class="muted">none: every check holds</td></tr>')
    for check in sorted(failing_checks, key=_page_order):
        subject = check.fingerprint.split("/", 2)[-1]
        held = f"{_ago(check.since, now)} ago" if check.since else f"over {history_hours:g} h"
        parts.append(
            f'<tr data-fingerprint="{_e(check.fingerprint)}"><td>{_e(check.contract or check.check)}</td>'
            f"<td><code>{_e(subject)}</code></td><td>{_e(check.owner)}</td>"
            f'<td class="state {_e(check.outcome)}" title="{_e(check.summary)}">'
            f"{_e(check.outcome)}</td><td>{_e(held)}</td>"
            f'<td class="wide">{strip_svg(snapshot.strips.get(check.fingerprint, {}), now, history_hours)}</td></tr>'
        )
    parts.append("</table></div>")
    parts.append(
        '<p class="muted">Machine-readable: <a href="/api/v1/status">/api/v1/status</a>, '
        '<a href="/api/v1/bulletin">/api/v1/bulletin</a>, <a href="/metrics">/metrics</a>, '
        '<a href="/healthz">/healthz</a>.</p></body></html>'
    )
    return "".join(parts)


def _page_order(check: CheckState) -> tuple[int, str]:
    return (WORST_FIRST.index(check.outcome) if check.outcome in WORST_FIRST else 9, check.fingerprint)
