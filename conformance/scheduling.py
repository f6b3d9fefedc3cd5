"""Distributing the suites over xdist workers one host at a time.

Every test of a host runs on the same worker, so that host's SSH connection and facts are
built once per run, and a run's time grows with hosts divided by workers, not with checks.
xdist's own ``loadgroup`` relies on rewriting node ids, which current pytest no longer
allows, so the plugin supplies the scheduler itself: LoadScopeScheduling with the scope of
a test being its host, read from the test's case id (the controller knows the inventory and
the registry, so it maps every case id to its host).
"""

from __future__ import annotations

from typing import Any

from xdist.scheduler.loadscope import LoadScopeScheduling


class HostScheduling(LoadScopeScheduling):  # type: ignore[misc]
    def __init__(self, config: Any, log: Any, hosts_by_case: dict[str, str]) -> None:
        super().__init__(config, log)
        self.hosts_by_case = hosts_by_case

    def _split_scope(self, nodeid: str) -> str:
        if nodeid.endswith("]") and "[" in nodeid:
            case_id = nodeid[nodeid.index("[") + 1 : -1]
            host = self.hosts_by_case.get(case_id)
            if host is not None:
                return f"host:{host}"
        return nodeid  # not a host check: schedule it on its own
