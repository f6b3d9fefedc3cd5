"""LiteLLM's live table (/model/info), recorded from the lab's LiteLLM 1.108.7 (credentials are
removed by LiteLLM itself; see selftest/recorded/README.md)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from conformance.contracts import gateway_never_runs_inference, no_routing_loop, showroom_backroom
from conformance.contracts._live_table import LiveTable
from conformance.errors import FactUnavailable
from conformance.facts.live_models import compare_tables, live_deployments, live_graph
from conformance.inventory.loader import load_inventory
from conformance.redact import redact
from conformance.results import Outcome
from selftest.conftest import INVENTORY_DIR
from selftest.unit.parsers._recorded import text

RECORDED: dict[str, Any] = json.loads(text("lab-litellm-model-info.json"))


@pytest.fixture(scope="module")
def lab():
    return load_inventory(INVENTORY_DIR / "lab.yaml", environ={})


def graph_of(lab, payload):
    return live_graph(live_deployments(payload), lab, "litellm-orch")


def edited(change) -> dict[str, Any]:
    payload = copy.deepcopy(RECORDED)
    change(payload["data"])
    return payload


def test_recorded_table_reads_as_the_lab_graph(lab):
    graph = graph_of(lab, RECORDED)
    assert graph.handles() == ["optimized-high", "studio-balanced", "studio-high"]
    assert graph.terminals("optimized-high") == [("studio:4040", "labtiny/tiny-chat-high")]
    assert graph.cycles() == [] and graph.local_inference_handles() == []


def test_same_tables_have_no_findings(lab):
    assert compare_tables(graph_of(lab, RECORDED), graph_of(lab, RECORDED)) == []


def test_handle_only_live_and_only_in_files_are_both_findings(lab):
    live = graph_of(lab, edited(lambda data: data.append({**data[0], "model_name": "shadow-handle"})))
    files = graph_of(lab, edited(lambda data: data.pop(1)))  # router.yaml without studio-balanced
    problems = compare_tables(files, live)
    assert any("'shadow-handle' is in LiteLLM's live table" in item for item in problems)
    assert any("'studio-balanced' is in LiteLLM's live table" in item for item in problems)
    assert not any("router.yaml but not" in item for item in problems)
    reverse = compare_tables(live, files)
    assert any("'shadow-handle' is in router.yaml but not in LiteLLM's live table" in item for item in reverse)


def test_live_name_under_a_declared_wildcard_is_explained(lab):
    files = graph_of(lab, edited(lambda data: data.append({**data[0], "model_name": "studio-*"})))
    live = graph_of(lab, edited(lambda data: data.append({**data[0], "model_name": "studio-extra"})))
    assert compare_tables(files, live) == []


def test_live_loop_is_a_no_routing_loop_violation(lab):
    def loop(data):
        data[2]["litellm_params"]["model"] = "openai/optimized-high"  # OptiLLM forwards it back

    files = graph_of(lab, RECORDED)
    live = LiveTable(graph_of(lab, edited(loop)), "recorded")
    assert no_routing_loop.judge_graph(files).outcome is Outcome.PASSED
    result = no_routing_loop.judge_graph(files, live)
    assert result.outcome is Outcome.VIOLATED
    assert any(item.startswith("live: litellm:optimized-high") for item in result.details), result.render()


@pytest.mark.parametrize(
    "params",
    [
        {"model": "openai/tiny", "api_base": "http://127.0.0.1:11434/v1"},
        {"model": "ollama/llama3"},  # ollama's default api_base is http://localhost:11434
    ],
)
def test_live_local_inference_is_a_violation(lab, params):
    def local(data):
        data[0]["litellm_params"] = params

    service = lab.service("litellm-orch")
    files = graph_of(lab, RECORDED)
    live = LiveTable(graph_of(lab, edited(local)), "recorded")
    assert gateway_never_runs_inference.judge_forwarding(service, None, files).outcome is Outcome.PASSED
    result = gateway_never_runs_inference.judge_forwarding(service, None, files, live)
    assert result.outcome is Outcome.VIOLATED, result.render()


def test_showroom_backroom_reports_the_live_difference(lab):
    files = graph_of(lab, RECORDED)
    live = LiveTable(graph_of(lab, edited(lambda data: data.append({**data[0], "model_name": "shadow"}))), "rec")
    present = {"studio:4040": {"labtiny/tiny-chat-high"}, "studio:4041": {"labtiny/tiny-chat-balanced"}}
    assert showroom_backroom.judge_handles(files, None, "-", present).outcome is Outcome.PASSED
    result = showroom_backroom.judge_handles(files, None, "-", present, live)
    assert result.outcome is Outcome.VIOLATED
    assert any("'shadow' is in LiteLLM's live table" in item for item in result.details)


def test_api_key_in_a_live_answer_is_registered_and_never_printed():
    payload = edited(lambda data: data[0]["litellm_params"].update(api_key="sk-live-table-9f8e7d6c5b4a"))
    live_deployments(payload)
    assert "sk-live-table-9f8e7d6c5b4a" not in redact(json.dumps(payload))


@pytest.mark.parametrize("payload", [None, {"data": "x"}, {"data": [{"model_name": "a"}]}, [1]])
def test_unexpected_shape_is_fact_unavailable(payload):
    with pytest.raises(FactUnavailable):
        live_deployments(payload)
