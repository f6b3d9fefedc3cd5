"""The running monitor: a database refresher, a health poller and the HTTP server, in one process.

Two background loops and the server's threads share one thing, the ``Rendered`` bytes of
the newest snapshot, swapped as a whole (a reference assignment), so a request never sees
half a refresh. The refresher reads the database every ``refresh_seconds`` (and right after
each poll); when a read fails, the last known snapshot is kept, marked stale with the
reason, and every data endpoint answers 503 with that state and the reason, never a trace.
The poller probes the health checks every ``poll_seconds`` and records them; a poll that
cannot be recorded is counted and logged, and the next one tries again.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from conformance.bulletin import events
from conformance.bulletin.flapping import policy_from_inventory
from conformance.monitor import render
from conformance.monitor.config import MonitorConfig
from conformance.monitor.metrics import MonitorTimings, exposition
from conformance.monitor.poller import HealthPoller, Poll
from conformance.monitor.server import (
    MonitorHTTPServer,
    Response,
    Route,
    ServerHandle,
    allowed_host_names,
)
from conformance.monitor.state import Snapshot, StateReader
from conformance.redact import redact
from conformance.results import Outcome

JSON = "application/json"
HTML = "text/html; charset=utf-8"
PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
FILTER_CACHE = 64  # filtered API answers kept per snapshot
SCHEMAS = Path(__file__).resolve().parent / "schemas"
# An unchanged database is re-read and re-rendered this often anyway, so ages on the page move on.
RERENDER_SECONDS = 60.0


@dataclass(frozen=True)
class Rendered:
    snapshot: Snapshot
    page: bytes
    status: bytes
    bulletin: bytes
    metrics: bytes
    openmetrics: bytes


class Monitor:
    def __init__(
        self,
        config: MonitorConfig,
        engine_factory: Callable[[], Engine],
        database: str,
        poller: HealthPoller | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.inventory = config.inventory
        self.engine_factory = engine_factory
        self.database = database
        self.log = log or (lambda line: print(redact(line), file=sys.stderr, flush=True))
        self.reader = StateReader(self.inventory.layer.name, database, config.history_hours)
        self.poller = poller if poller is not None else (HealthPoller(config) if config.poll else None)
        # The monitor's polls open an entry only after open_after_polls failing polls in a row;
        # the suites' runs keep the inventory's thresholds (a run every 15 minutes is no blip).
        self.policy = policy_from_inventory(self.inventory).at_least(config.open_after_polls)
        self.timings = MonitorTimings()
        self.started = datetime.now(UTC)
        self.last_poll: datetime | None = None
        self.last_poll_error: str | None = None
        self._engine: Engine | None = None
        self._rendered: Rendered | None = None
        self._version: tuple[object, ...] | None = None
        self._filtered: dict[tuple[str, str], bytes] = {}
        self._stop = threading.Event()
        self._refresh_now = threading.Event()
        self._threads: list[threading.Thread] = []
        self.http: ServerHandle | None = None

    # -- the database -------------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = self.engine_factory()
        return self._engine

    def refresh(self, now: datetime | None = None) -> Rendered:
        """Read the database into a new snapshot and render it; on failure keep the last one, stale."""
        started = time.monotonic()
        try:
            with self.engine.connect() as connection:
                version = self.reader.version(connection)
                moment = now or datetime.now(UTC)
                current = self._rendered
                if (
                    current is not None
                    and not current.snapshot.stale
                    and version == self._version
                    and (moment - current.snapshot.read_at).total_seconds() < RERENDER_SECONDS
                ):
                    return current  # nothing changed: no read, no render (and no GIL taken from requests)
                snapshot = self.reader.read(connection, now)
                self._version = version
        except Exception as exc:  # noqa: BLE001 - a database that cannot be read is a state, not a crash
            from conformance.store.session import failure_text

            reason = f"the system database cannot be read: {failure_text(exc)}"
            previous = (
                self._rendered.snapshot
                if self._rendered is not None
                else Snapshot(read_at=now or datetime.now(UTC), database=self.database)
            )
            if previous.error != reason:
                self.log(f"monitor: {reason}; serving the last known state, marked stale")
            snapshot = replace(previous, error=reason, stale_since=previous.stale_since or (now or datetime.now(UTC)))
            # A failed connection may be a file that changed under us: start from a new engine.
            self._dispose_engine()
            self.reader = StateReader(self.inventory.layer.name, self.database, self.config.history_hours)
        self.timings.refresh_seconds = time.monotonic() - started
        rendered = self._render(snapshot)
        self._rendered = rendered
        self._filtered = {}
        return rendered

    def _dispose_engine(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def _render(self, snapshot: Snapshot) -> Rendered:
        config = self.config
        page = render.status_page(snapshot, self.inventory, config.history_hours, config.expected_run_hours)
        metrics, openmetrics = exposition(self.inventory, snapshot, self.timings)
        return Rendered(
            snapshot,
            page.encode(),
            render.dumps(
                render.status_document(snapshot, self.inventory, expected_run_hours=config.expected_run_hours)
            ),
            render.dumps(render.bulletin_document(snapshot, self.inventory)),
            metrics,
            openmetrics,
        )

    # -- the health poll ----------------------------------------------------------------------

    def poll_once(self, now: datetime | None = None) -> Poll | None:
        if self.poller is None:
            return None
        from conformance.store.records import record_poll, write_bulletin_file

        poll = self.poller.poll(now)
        self.timings.poll_seconds = poll.seconds
        self.timings.polls += 1
        answered_hosts = {
            result.subject.host
            for result in poll.results
            if result.subject is not None
            and result.subject.check != "host-identity"
            and result.outcome in (Outcome.PASSED, Outcome.VIOLATED)
        }
        try:
            update = record_poll(
                self.engine,
                self.inventory,
                list(poll.results),
                poll.poll_id,
                self.policy,
                now=poll.started,
                recovered_hosts=sorted(host for host in answered_hosts if host),
            )
            escalations = [entry for entry in update.entries if entry.get("event") not in events.BOOKKEEPING]
            if escalations:
                for entry in escalations:
                    self.log(f"monitor: bulletin {entry['event']} {entry['fingerprint']} ({entry.get('owner')})")
                try:
                    write_bulletin_file(self.engine, self.config.bulletin_file, self.inventory.layer.name)
                except OSError as exc:
                    self.log(f"monitor: bulletin file {self.config.bulletin_file} not written: {exc}")
            self.last_poll_error = None
        except Exception as exc:  # noqa: BLE001 - a poll that cannot be recorded is counted, never fatal
            from conformance.store.session import failure_text

            self.timings.poll_failures += 1
            self.last_poll_error = f"poll not recorded: {failure_text(exc)}"
            self.log(f"monitor: {self.last_poll_error}")
            self._dispose_engine()
        self.last_poll = poll.started
        return poll

    # -- what the endpoints answer ------------------------------------------------------------

    def rendered(self) -> Rendered:
        return self._rendered if self._rendered is not None else self.refresh()

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        rendered = self.rendered()
        snapshot = rendered.snapshot
        now = datetime.now(UTC)
        poll_ok = True
        poller: dict[str, Any] = {"enabled": self.poller is not None}
        if self.poller is not None:
            overdue = (
                self.last_poll is None or (now - self.last_poll).total_seconds() > 3 * self.config.poll_seconds + 30
            )
            age_ok = not (overdue and (now - self.started).total_seconds() > 3 * self.config.poll_seconds + 30)
            poll_ok = age_ok and self.last_poll_error is None
            poller.update(
                {
                    "interval_seconds": self.config.poll_seconds,
                    "last_poll_at": render.stamp(self.last_poll),
                    "checks": len(self.poller.planned),
                    "error": self.last_poll_error,
                }
            )
        newest = snapshot.newest_run_at
        ready = not snapshot.stale and poll_ok
        document = {
            "status": "ok" if ready else ("stale" if snapshot.stale else "degraded"),
            "live": True,
            "ready": ready,
            "database": {
                "url": self.database,
                "readable": not snapshot.stale,
                "error": snapshot.error,
                "read_at": render.stamp(snapshot.read_at),
                "stale_since": render.stamp(snapshot.stale_since),
            },
            "newest_run_at": render.stamp(newest),
            "newest_run_age_seconds": round((now - newest).total_seconds(), 1) if newest else None,
            "poller": poller,
            "started_at": render.stamp(self.started),
        }
        return ready, document

    def routes(self) -> dict[str, Route]:
        def data(kind: str) -> Route:
            def route(query: Mapping[str, list[str]], headers: Mapping[str, str]) -> Response:
                rendered = self.rendered()
                status = 503 if rendered.snapshot.stale else 200
                if kind == "page":
                    return Response(status, HTML, rendered.page)
                allowed = render.STATUS_FILTERS if kind == "status" else render.BULLETIN_FILTERS
                states = (*render.WORST_FIRST, "unknown", "disabled", "planned")
                if not query:
                    return Response(status, JSON, rendered.status if kind == "status" else rendered.bulletin)
                key = (kind, json.dumps(sorted(query.items())))
                body = self._filtered.get(key)
                if body is None:
                    try:
                        filters = render.parse_filters(
                            query, allowed, states if kind == "status" else render.BULLETIN_STATES
                        )
                    except render.FilterError as exc:
                        raise ValueError(str(exc)) from None
                    every = "checks" in filters.values
                    if every and filters.values["checks"] != frozenset({"all"}):
                        raise ValueError("checks: 'all' is the one value (default: the checks that do not hold)")
                    if every:
                        filters = render.Filters({k: v for k, v in filters.values.items() if k != "checks"})
                    document = (
                        render.status_document(
                            rendered.snapshot, self.inventory, filters, self.config.expected_run_hours, every
                        )
                        if kind == "status"
                        else render.bulletin_document(rendered.snapshot, self.inventory, filters)
                    )
                    body = render.dumps(document)
                    if len(self._filtered) < FILTER_CACHE:
                        self._filtered[key] = body
                return Response(status, JSON, body)

            return route

        def metrics(query: Mapping[str, list[str]], headers: Mapping[str, str]) -> Response:
            rendered = self.rendered()
            if "application/openmetrics-text" in headers.get("accept", ""):
                return Response(200, OPENMETRICS, rendered.openmetrics)
            return Response(200, PROMETHEUS, rendered.metrics)

        def healthz(query: Mapping[str, list[str]], headers: Mapping[str, str]) -> Response:
            ready, document = self.readiness()
            return Response(200 if ready else 503, JSON, render.dumps(document))

        def live(query: Mapping[str, list[str]], headers: Mapping[str, str]) -> Response:
            return Response(200, JSON, b'{"live":true}')

        def schema(name: str) -> Route:
            body = (SCHEMAS / name).read_bytes()
            return lambda query, headers: Response(200, "application/schema+json", body)

        return {
            "/api/v1/schemas/status-v1.json": schema("status-v1.json"),
            "/api/v1/schemas/bulletin-v1.json": schema("bulletin-v1.json"),
            "/": data("page"),
            "/api/v1/status": data("status"),
            "/api/v1/bulletin": data("bulletin"),
            "/metrics": metrics,
            "/healthz": healthz,
            "/healthz/live": live,
        }

    # -- running ------------------------------------------------------------------------------

    def _loop(self, name: str, interval: float, step: Callable[[], object], wake: threading.Event | None) -> None:
        while not self._stop.is_set():
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - a loop never dies: it logs and goes on
                self.log(f"monitor: {name} failed: {type(exc).__name__}: {exc}")
            if wake is not None:
                wake.wait(interval)
                wake.clear()
            else:
                self._stop.wait(interval)

    def _after_poll(self) -> None:
        self.poll_once()
        self._refresh_now.set()

    def start(self, port: int | None = None) -> ServerHandle:
        self.refresh()
        server = MonitorHTTPServer(
            (self.config.bind, self.config.port.port if port is None else port),
            self.routes(),
            self.config.limits,
            frozenset(),
            log=self.log,
        )
        server.allowed_hosts = allowed_host_names(self.config.bind, int(server.server_address[1]))
        self.http = ServerHandle(server)
        self.http.start()
        loops: list[tuple[str, float, Callable[[], object], threading.Event | None]] = [
            ("refresh", self.config.refresh_seconds, self.refresh, self._refresh_now)
        ]
        if self.poller is not None:
            loops.append(("poll", self.config.poll_seconds, self._after_poll, None))
        for name, interval, step, wake in loops:
            thread = threading.Thread(target=self._loop, args=(name, interval, step, wake), name=f"monitor-{name}")
            thread.daemon = True
            thread.start()
            self._threads.append(thread)
        return self.http

    def stop(self) -> None:
        self._stop.set()
        self._refresh_now.set()
        if self.http is not None:
            self.http.stop()
        if self.poller is not None:
            self.poller.close()
        self._dispose_engine()

    def serve_forever(self) -> int:
        handle = self.start()
        self.log(
            f"monitor: serving http://{self.config.bind}:{handle.port}/ (read-only; GET and HEAD), "
            f"database {self.database}, polling {len(self.poller.planned) if self.poller else 0} health checks "
            f"every {self.config.poll_seconds:g} s"
        )
        done = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: done.set())
        done.wait()
        self.stop()
        return 0
