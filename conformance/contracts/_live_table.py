"""LiteLLM's live model table (GET /model/info with the master key), shared by the contracts
that judge the model graph: showroom-backroom compares it with router.yaml, and no-routing-loop
and gateway-never-runs-inference judge the live api_bases as they judge the files'."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from conformance.contracts.base import Case
from conformance.errors import FactUnavailable
from conformance.facts.derived import litellm_service
from conformance.facts.live_models import live_deployments, live_graph
from conformance.facts.routing import ModelGraph, optillm_routes
from conformance.inventory.model import Service
from conformance.probes import LanRequest

MASTER_KEY = "litellm-master-key"


def model_info_request(case: Case, path: str = "/model/info") -> LanRequest | None:
    """The authenticated GET of LiteLLM's live table, or None when it cannot be made."""
    litellm = litellm_service(case.inventory, case.service)
    address = case.inventory.host(litellm.host).address
    if not address or case.bound.secret(MASTER_KEY) is None:
        return None
    port = next((port for port in case.inventory.ports_of(litellm.name) if port.state == "active"), None)
    if port is None:
        return None
    return LanRequest(address, port.port, path, MASTER_KEY)


def lan_probes(case: Case) -> Sequence[LanRequest]:
    request = model_info_request(case)
    return (request,) if request else ()


@dataclass(frozen=True)
class LiveTable:
    graph: ModelGraph | None  # None: not read (see note)
    note: str


def live_table(case: Case, litellm: Service | None = None) -> LiveTable:
    """LiteLLM's live table as a model graph, or why it could not be read (never raises)."""
    litellm = litellm or litellm_service(case.inventory, case.service)
    request = model_info_request(case)
    if request is None:
        return LiveTable(None, f"skipped: the {MASTER_KEY} secret was not found ({case.bound.secret_hint(MASTER_KEY)})")
    probe = case.lan(request)
    if probe.status != 200:
        return LiveTable(None, f"not available ({probe.describe()})")
    try:
        deployments = live_deployments(probe.json)
        approaches, plugins = optillm_routes(case.inventory, case.facts)
        graph = live_graph(deployments, case.inventory, litellm.name, approaches, plugins)
    except FactUnavailable as exc:
        return LiveTable(None, f"unreadable: {exc}")
    return LiveTable(graph, f"{len(deployments)} deployments: {', '.join(graph.handles())}")
