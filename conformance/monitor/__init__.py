"""The System monitor: the seed's fourth service, a local-only, read-only aggregator.

``conformance monitor`` runs on the Mini under systemd (``deploy/gateway-conformance-monitor.service``).
It reads the system database that every runner writes (the timer, CI, on-demand runs), polls
the inventory's read-only health checks on its own short interval, and serves on loopback:

- ``/``: the status page for owners (server-rendered HTML, no JavaScript);
- ``/metrics``: OpenMetrics / Prometheus text (``prometheus_client``);
- ``/api/v1/status`` and ``/api/v1/bulletin``: versioned JSON for agents (schemas in ``schemas/``);
- ``/healthz``: its own liveness and readiness.

The data path, one module each: ``config`` (what to serve and poll, from the inventory and
the command line, refused when unsafe) -> ``poller`` (health checks -> Results -> the
``health_checks`` table and the bulletin, through the suites' own correlation) and ``state``
(the database -> one immutable ``Snapshot``) -> ``render`` / ``metrics`` (a snapshot -> bytes)
-> ``server`` (bounded HTTP on loopback, serving the last rendered snapshot).
"""
