"""The live route probe's judgement, on response headers recorded from the lab's LiteLLM 1.108.7
(selftest/recorded/lab-litellm-route-headers.json) and the lab's own router.yaml."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from conformance.contracts import live_route
from conformance.contracts.base import Case
from conformance.facts.routing import ModelGraph, build_model_graph, endpoint_of
from conformance.inventory.loader import load_inventory
from conformance.probes import LanRequest, ProbeResult
from conformance.results import Outcome
from conformance.runtime import RunOptions, Runtime
from conformance.transport.audit import AuditLog
from lab.files import router_yaml
from selftest.conftest import INVENTORY_DIR
from selftest.unit.parsers._recorded import text

RECORDED: dict[str, Any] = json.loads(text("lab-litellm-route-headers.json"))
ROUTER: dict[str, Any] = yaml.safe_load(router_yaml())


@pytest.fixture(scope="module")
def lab():
    return load_inventory(INVENTORY_DIR / "lab.yaml", environ={})


def graph_with(lab, change: Callable[[dict[str, Any]], None] | None = None) -> ModelGraph:
    router = copy.deepcopy(ROUTER)
    if change is not None:
        change(router)
    return build_model_graph(router, {}, lab, "litellm-orch")


def probes(**changes: dict[str, str]) -> dict[str, ProbeResult]:
    """The recorded answers, with some handles' headers changed (or added)."""
    found = {}
    added = {name: {"status": 200, "headers": {}} for name in changes if name not in RECORDED}
    for handle, answer in {**RECORDED, **added}.items():
        headers = {**answer["headers"], **changes.get(handle, {})}
        found[handle] = ProbeResult("url", True, answer["status"], headers=headers)
    return found


def judged(lab, graph: ModelGraph, answers: dict[str, ProbeResult], looping: list[str] | None = None):
    return live_route.judge_routes(graph, answers, lambda url: endpoint_of(lab, "mini", url), looping)


def test_recorded_routes_agree_with_the_lab_router(lab):
    result = judged(lab, graph_with(lab), probes())
    assert result.outcome is Outcome.PASSED, result.render()
    routes = result.evidence["live routes"]
    assert "handle 'optimized-high' -> http://127.0.0.1:4020/v1 (mini:4020) as openai/studio-high" in routes
    assert "handle 'studio-high' -> http://198.51.100.11:4040/v1 (studio:4040)" in routes


def test_another_instance_than_the_files_say_is_a_violation(lab):
    served_elsewhere = {
        "x-litellm-model-api-base": "http://198.51.100.11:4041/v1",
        "x-litellm-model-name": "openai/labtiny/tiny-chat-balanced",
    }
    result = judged(lab, graph_with(lab), probes(**{"studio-high": served_elsewhere}))
    assert result.outcome is Outcome.VIOLATED
    assert (
        "handle 'studio-high': LiteLLM sent it to http://198.51.100.11:4041/v1 (studio:4041) as "
        "openai/labtiny/tiny-chat-balanced; the files route it to http://198.51.100.11:4040/v1 (studio:4040) as "
        "openai/labtiny/tiny-chat-high" in result.render()
    )


def test_the_right_address_with_another_model_is_a_violation(lab):
    result = judged(lab, graph_with(lab), probes(**{"studio-high": {"x-litellm-model-name": "openai/other"}}))
    assert result.outcome is Outcome.VIOLATED
    assert "as openai/other; the files route it to" in result.render()


@pytest.mark.parametrize(
    "spelling", ["http://localhost:4020/v1", "http://[::ffff:127.0.0.1]:4020/v1", "http://mini:4020/v1"]
)
def test_addresses_are_compared_by_what_they_reach(lab, spelling):
    result = judged(lab, graph_with(lab), probes(**{"optimized-high": {"x-litellm-model-api-base": spelling}}))
    assert result.outcome is Outcome.PASSED, result.render()


def test_a_host_named_by_its_first_label_only_is_not_the_studio(lab):
    base = {"x-litellm-model-api-base": "http://studio.attacker.example:4040/v1"}
    result = judged(lab, graph_with(lab), probes(**{"studio-high": base}))
    assert result.outcome is Outcome.VIOLATED
    assert "(studio.attacker.example:4040)" in result.render()


def _fallback(router: dict[str, Any]) -> None:
    router["router_settings"]["fallbacks"] = [{"studio-high": ["studio-balanced"]}]


BALANCED = {
    "x-litellm-model-api-base": "http://198.51.100.11:4041/v1",
    "x-litellm-model-name": "openai/labtiny/tiny-chat-balanced",
    "x-litellm-model-group": "studio-balanced",
}


def test_a_declared_fallback_that_answered_is_where_the_files_say(lab):
    answers = probes(**{"studio-high": {**BALANCED, "x-litellm-attempted-fallbacks": "1"}})
    result = judged(lab, graph_with(lab, _fallback), answers)
    assert result.outcome is Outcome.PASSED, result.render()
    assert "model group 'studio-balanced' after 1 fallback(s)" in result.evidence["live routes"]


def test_another_group_without_a_fallback_is_a_violation(lab):
    result = judged(lab, graph_with(lab, _fallback), probes(**{"studio-high": BALANCED}))
    assert result.outcome is Outcome.VIOLATED
    assert "handle 'studio-high' was served by model group 'studio-balanced'" in result.render()
    undeclared = probes(**{"studio-high": {**BALANCED, "x-litellm-attempted-fallbacks": "1"}})
    assert judged(lab, graph_with(lab), undeclared).outcome is Outcome.VIOLATED


def test_an_alias_is_served_by_the_group_it_names(lab):
    def alias(router: dict[str, Any]) -> None:
        router["router_settings"]["model_group_alias"] = {"fast": "studio-balanced"}

    result = judged(lab, graph_with(lab, alias), probes(fast=BALANCED))
    assert result.outcome is Outcome.PASSED, result.render()


def test_no_answer_or_no_api_base_header_is_broken_never_passed(lab):
    failed = probes()
    failed["studio-high"] = ProbeResult("url", True, 500, body='{"error": "Connection error"}', headers={})
    result = judged(lab, graph_with(lab), failed)
    assert result.outcome is Outcome.BROKEN
    assert "handle 'studio-high': LiteLLM did not answer the probe (HTTP 500" in result.render()
    silent = probes()
    silent["studio-high"] = ProbeResult("url", True, 200, headers={})
    result = judged(lab, graph_with(lab), silent)
    assert result.outcome is Outcome.BROKEN
    assert "names no api_base (x-litellm-model-api-base missing)" in result.render()


def test_a_violation_outranks_an_unreadable_route(lab):
    answers = probes(**{"studio-balanced": {"x-litellm-model-api-base": "http://198.51.100.11:4040/v1"}})
    answers["studio-high"] = ProbeResult("url", False, error="timed out", error_kind="timeout")
    result = judged(lab, graph_with(lab), answers)
    assert result.outcome is Outcome.VIOLATED
    assert "handle 'studio-high': LiteLLM did not answer the probe (timeout: timed out)" in result.render()


def test_a_looping_handle_is_never_probed(lab):
    def loop(router: dict[str, Any]) -> None:
        router["router_settings"]["fallbacks"] = [{"studio-high": ["optimized-high"]}]

    graph = graph_with(lab, loop)
    looping = live_route.looping_handles(graph, None)
    assert looping == ["optimized-high", "studio-high"]
    answers = {handle: probe for handle, probe in probes().items() if handle not in looping}
    result = judged(lab, graph, answers, looping)
    assert result.outcome is Outcome.BROKEN
    assert "handle 'studio-high': not probed, its route loops (see no-routing-loop)" in result.render()
    assert live_route.looping_handles(graph_with(lab), graph) == ["optimized-high", "studio-high"]


def test_the_probe_is_one_token_uncached_and_keyed_by_handle():
    body = json.loads(live_route.route_payload("studio-high"))
    assert body["max_tokens"] == 1 and body["stream"] is False
    assert body["cache"] == {"no-cache": True, "no-store": True}
    first = LanRequest(
        "198.51.100.10", 4000, "/v1/chat/completions", "litellm-master-key", 20, live_route.route_payload("a")
    )
    second = LanRequest(
        "198.51.100.10", 4000, "/v1/chat/completions", "litellm-master-key", 20, live_route.route_payload("b")
    )
    assert first.key != second.key and first.key.startswith("POST auth http://198.51.100.10:4000/")


def test_without_the_option_the_contract_is_skipped_with_the_reason(lab, tmp_path):
    runtime = Runtime(lab, AuditLog(tmp_path / "audit.jsonl", "run"), RunOptions())
    case = Case("live-route", "mini/litellm-orch", "mini", lab.service("litellm-orch"), runtime=runtime)
    result = live_route.judge(case)
    assert result.outcome is Outcome.SKIPPED
    assert "run with --probe-routes" in result.summary
