"""Each real or documented config of the corpus yields the verdict its program implies.

``selftest/corpus/manifest.yaml`` names the verdict and the rule of RULES.md behind it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.contracts import gateway_never_runs_inference, no_routing_loop, optillm_upstream_litellm
from conformance.facts.environment import OptiLLMSettings, apply_proxy_plugin
from conformance.facts.model import FactUnavailable, HostFacts
from conformance.facts.optillm_config import (
    choose_client,
    packaged_proxy_config,
    parse_combined_approach,
    parse_proxy_config,
)
from conformance.facts.routing import build_model_graph
from conformance.inventory.loader import load_inventory
from conformance.results import Outcome, Result, broken
from selftest.conftest import INVENTORY_DIR

CORPUS = Path(__file__).parent.parent / "corpus"
MANIFEST: dict[str, list[dict[str, Any]]] = yaml.safe_load((CORPUS / "manifest.yaml").read_text())


@pytest.fixture(scope="module")
def lab():
    return load_inventory(INVENTORY_DIR / "lab.yaml", environ={})


def _read(path: str) -> str | None:
    file = CORPUS / "litellm" / Path(path).name
    return file.read_text() if file.exists() else None


def _litellm_verdicts(lab, item: dict[str, Any]) -> tuple[Result, Result, Any]:
    name = item["file"]
    try:
        graph = build_model_graph(
            yaml.safe_load((CORPUS / name).read_text()),
            item.get("env", {}),
            lab,
            "litellm-orch",
            router_path=f"/etc/litellm/{Path(name).name}",
            read=_read,
        )
    except FactUnavailable as exc:
        return broken(str(exc)), broken(str(exc)), None
    service = lab.service("litellm-orch")
    return (
        no_routing_loop.judge_graph(graph),
        gateway_never_runs_inference.judge_forwarding(service, None, graph),
        graph,
    )


@pytest.mark.parametrize("item", MANIFEST["litellm"], ids=lambda item: item["file"])
def test_litellm_config_verdict(lab, item):
    loop, inference, graph = _litellm_verdicts(lab, item)
    assert loop.outcome is Outcome(item["no-routing-loop"]), loop.render()
    assert inference.outcome is Outcome(item["gateway-never-runs-inference"]), inference.render()
    if "cause" in item:
        assert item["cause"] in loop.summary
    if "handles" in item:
        assert graph.handles() == item["handles"]
    if "leaf" in item:
        assert any(item["leaf"] == endpoint for leaves in graph.leaves.values() for endpoint, _ in leaves)


@pytest.mark.parametrize("item", MANIFEST["optillm"], ids=lambda item: str(item["proxy_config"]))
def test_optillm_proxy_config_verdict(lab, item):
    env = dict(item["env"])
    settings = OptiLLMSettings(
        {"base_url": "http://127.0.0.1:4000/v1", "approach": item["approach"], "host": "127.0.0.1"},
        {"base_url": "environment OPTILLM_BASE_URL", "approach": "environment OPTILLM_APPROACH"},
        env,
        choose_client(env),
    )
    plugin = (
        parse_proxy_config((CORPUS / item["proxy_config"]).read_text(), item["proxy_config"], env)
        if item["proxy_config"]
        else packaged_proxy_config(env)
    )
    apply_proxy_plugin(settings, plugin)
    facts = HostFacts("mini", hostname="mini", os_name="Linux")
    result = optillm_upstream_litellm.optillm_upstream_is_litellm(lab.service("optillm-proxy"), settings, lab, facts)
    assert result.outcome is Outcome(item["optillm-upstream-is-litellm"]), result.render()


# server.py:parse_combined_approach L362-394, on the shapes its own docs and plugins use.
@pytest.mark.parametrize(
    ("model", "operation", "approaches", "rest"),
    [
        ("moa-gpt-4o-mini", "SINGLE", ("moa",), "gpt-4o-mini"),
        ("bon&proxy-gpt-4", "AND", ("bon", "proxy"), "gpt-4"),
        ("mcts|rto-llama-3", "OR", ("mcts", "rto"), "llama-3"),
        ("proxy-moa-studio-high", "SINGLE", ("proxy", "moa"), "studio-high"),
        ("re2-cot_reflection-x", "SINGLE", ("re2", "cot_reflection"), "x"),
        ("gpt-4o", "SINGLE", ("none",), "gpt-4o"),
        ("foo&bar-x", "AND", ("foo", "bar"), "x"),  # any "&" part is consumed
        ("auto", "SINGLE", ("none",), "auto"),
    ],
)
def test_approach_prefixes_are_stripped_like_optillm(model, operation, approaches, rest):
    parsed = parse_combined_approach(model)
    assert (parsed.operation, parsed.approaches, parsed.model) == (operation, approaches, rest)


def test_unset_proxy_variable_stays_literal_and_default_applies():
    text = "providers:\n  - name: a\n    base_url: ${BASE:-http://127.0.0.1:4000/v1}\n    api_key: ${KEY}\n"
    config = parse_proxy_config(text, "p.yaml", {})
    assert config.providers[0].base_url == "http://127.0.0.1:4000/v1"
    assert config.unset == ("KEY",)
