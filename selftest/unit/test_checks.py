"""Pure checks on canned facts: the semantics that are easy to get wrong."""

from __future__ import annotations

import pytest

from conformance.contracts import (
    file_parses,
    gateway_never_runs_inference,
    hf_token_for_gated_pulls,
    no_routing_loop,
    no_unexpected_listeners,
    optillm_upstream_litellm,
    port_bound,
    reserved_port_free,
    showroom_backroom,
    transformers_pin,
)
from conformance.facts.environment import OptiLLMSettings
from conformance.facts.model import FileFact, HostFacts
from conformance.facts.parsers import parse_ss
from conformance.facts.routing import build_model_graph
from conformance.inventory.loader import load_inventory
from conformance.results import Outcome
from selftest.conftest import INVENTORY_DIR


@pytest.fixture(scope="module")
def lab():
    return load_inventory(INVENTORY_DIR / "lab.yaml", environ={})


def facts_with(ss: str, host: str = "mini") -> HostFacts:
    return HostFacts(host, hostname=host, os_name="Linux", listeners=parse_ss(ss))


def line(address: str, port: int, process: str = "optillm", pid: int = 10) -> str:
    return f'LISTEN 0 128 {address}:{port} 0.0.0.0:* users:(("{process}",pid={pid},fd=3))'


def line6(address: str, port: int, peer: str, process: str = "optillm", pid: int = 10) -> str:
    return f'LISTEN 0 128 {address}:{port} {peer} users:(("{process}",pid={pid},fd=3))'


# (listeners as ss prints them, declared bind, expected outcome)
BINDINGS = [
    ([line("127.0.0.1", 4020)], "127.0.0.1", Outcome.PASSED),
    ([line("0.0.0.0", 4020)], "127.0.0.1", Outcome.VIOLATED),
    ([line6("*", 4020, "*:*")], "127.0.0.1", Outcome.VIOLATED),
    ([line6("[::ffff:127.0.0.1]", 4020, "[::]:*")], "127.0.0.1", Outcome.PASSED),
    ([line("127.0.0.1", 4020), line6("[::1]", 4020, "[::]:*")], "127.0.0.1", Outcome.VIOLATED),
    ([line("0.0.0.0", 4000, "litellm")], "0.0.0.0", Outcome.PASSED),
    ([line6("*", 4000, "*:*", "litellm")], "0.0.0.0", Outcome.VIOLATED),  # also on IPv6
    ([line6("[::]", 4000, "[::]:*", "litellm")], "0.0.0.0", Outcome.VIOLATED),  # IPv6 only
    ([line("198.51.100.10", 4000, "litellm")], "0.0.0.0", Outcome.VIOLATED),  # one address only
    ([], "0.0.0.0", Outcome.VIOLATED),
]


@pytest.mark.parametrize(("ss_lines", "bind", "expected"), BINDINGS)
def test_port_bound_exactly_as_declared(lab, ss_lines, bind, expected):
    port = next(p for p in lab.ports if p.port == (4020 if bind.startswith("127") else 4000)).model_copy(
        update={"bind": bind}
    )
    result = port_bound.judge_binding(port, facts_with("\n".join(ss_lines)))
    assert result.outcome is expected, result.render()


def test_unexpected_listener_is_named_and_ssh_and_loopback_are_not(lab):
    facts = facts_with(
        "\n".join(
            [
                line("0.0.0.0", 22, "sshd", 1),
                line6("[::]", 22, "[::]:*", "sshd", 1),
                line("0.0.0.0", 4000, "litellm"),
                line("127.0.0.1", 4020),
                line("127.0.0.1", 9999, "python3"),
                line("0.0.0.0", 8088, "python3", 77),
            ]
        )
    )
    result = no_unexpected_listeners.judge_listeners(lab.host("mini"), lab, facts)
    assert result.outcome is Outcome.VIOLATED
    assert "0.0.0.0:8088 (python3)" in result.summary and "9999" not in result.summary and ":22" not in result.summary


def test_reserved_port(lab):
    port = next(p for p in lab.ports if p.port == 4042)
    assert (
        reserved_port_free.judge_reserved(port, facts_with(line("0.0.0.0", 22, "sshd"), "studio")).outcome
        is Outcome.PASSED
    )
    taken = reserved_port_free.judge_reserved(port, facts_with(line("0.0.0.0", 4042, "python3", 5), "studio"))
    assert taken.outcome is Outcome.VIOLATED and "python3[5]" in taken.summary


ROUTER = {
    "model_list": [
        {
            "model_name": "studio-high",
            "litellm_params": {"model": "openai/labtiny/tiny-chat-high", "api_base": "http://198.51.100.11:4040/v1"},
        },
        {
            "model_name": "optimized-high",
            "litellm_params": {"model": "openai/studio-high", "api_base": "http://127.0.0.1:4020/v1"},
        },
    ]
}


def test_model_graph_passes_through_optillm_without_a_loop(lab):
    graph = build_model_graph(ROUTER, {}, lab, "litellm-orch")
    assert graph.cycles() == []
    assert graph.terminals("optimized-high") == [("studio:4040", "labtiny/tiny-chat-high")]


def test_routing_loop_is_spelled_out(lab):
    router = {
        "model_list": [
            *ROUTER["model_list"],
            {
                "model_name": "loop-back",
                "litellm_params": {"model": "openai/moa-loop-back", "api_base": "os.environ/LOOP_BASE"},
            },
        ]
    }
    graph = build_model_graph(router, {"LOOP_BASE": "http://localhost:4020/v1"}, lab, "litellm-orch")
    result = no_routing_loop.judge_graph(graph)
    assert result.outcome is Outcome.VIOLATED
    assert "litellm:loop-back -> optillm:moa-loop-back -> litellm:loop-back" in result.render()


def test_showroom_names_the_absent_model(lab):
    router = {
        "model_list": [
            *ROUTER["model_list"],
            {
                "model_name": "ghost",
                "litellm_params": {"model": "openai/labtiny/absent", "api_base": "http://198.51.100.11:4040/v1"},
            },
            {"model_name": "cloud", "litellm_params": {"model": "gpt-4o"}},
        ]
    }
    graph = build_model_graph(router, {}, lab, "litellm-orch")
    result = showroom_backroom.judge_handles(
        graph,
        ["studio-high", "optimized-high", "ghost", "cloud", "db-only"],
        "live",
        {"studio:4040": {"labtiny/tiny-chat-high"}},
    )
    text = result.render()
    assert result.outcome is Outcome.VIOLATED
    assert "handle 'ghost' -> labtiny/absent at studio:4040" in text
    # no api_base: LiteLLM's OpenAI chain ends at the public API (main.py L1712-1718)
    assert "handle 'cloud' -> gpt-4o at api.openai.com" in text
    assert "'db-only' is served live" in text
    assert "optimized-high" not in text.split("graph:")[0]


def _settings(env: dict[str, str], base_url: str, providers: list[str], client: str = "openai") -> OptiLLMSettings:
    values = {
        "host": "127.0.0.1",
        "port": "4020",
        "base_url": base_url,
        "approach": "proxy",
        "model": "x",
        "optillm_api_key": "",
    }
    sources = dict.fromkeys(values, "environment")
    return OptiLLMSettings(
        values, sources, env, client, [{"name": f"p{i}", "base_url": url} for i, url in enumerate(providers)]
    )


@pytest.mark.parametrize(
    ("base_url", "providers", "expected"),
    [
        ("http://127.0.0.1:4000/v1", ["http://localhost:4000/v1/"], Outcome.PASSED),
        ("http://127.0.0.1:4000/v1", ["http://mini:4000/v1"], Outcome.PASSED),
        # ::1 means this host, but LiteLLM's 0.0.0.0 listener takes IPv4 only: not reachable.
        ("http://[::1]:4000/v1", ["http://127.0.0.1:4000/v1"], Outcome.VIOLATED),
        ("http://198.51.100.10:4000/v1", ["http://127.0.0.1:4000/v1"], Outcome.PASSED),
        ("http://127.0.0.1:4040/v1", ["http://127.0.0.1:4000/v1"], Outcome.VIOLATED),
        ("http://127.0.0.1:4000/v1", ["http://198.51.100.11:4040/v1"], Outcome.VIOLATED),
        ("", ["http://127.0.0.1:4000/v1"], Outcome.VIOLATED),
        ("http://127.0.0.1:4000", ["http://127.0.0.1:4000/v1"], Outcome.VIOLATED),
    ],
)
def test_upstream_is_compared_semantically(lab, base_url, providers, expected):
    facts = facts_with(line("0.0.0.0", 4000, "litellm"))
    facts.hostname = "mini"
    result = optillm_upstream_litellm.optillm_upstream_is_litellm(
        lab.service("optillm-proxy"), _settings({}, base_url, providers), lab, facts
    )
    assert result.outcome is expected, result.render()


def test_local_inference_mode_is_a_violation_of_both_contracts(lab):
    settings = _settings({"OPTILLM_API_KEY": "x"}, "http://127.0.0.1:4000/v1", [], client="local")
    facts = facts_with(line("0.0.0.0", 4000, "litellm"))
    upstream = optillm_upstream_litellm.optillm_upstream_is_litellm(lab.service("optillm-proxy"), settings, lab, facts)
    inference = gateway_never_runs_inference.judge_forwarding(lab.service("optillm-proxy"), settings, None)
    assert upstream.outcome is inference.outcome is Outcome.VIOLATED
    assert "LOCAL INFERENCE" in upstream.summary and "runs inference itself" in inference.summary


def test_upstream_bound_elsewhere_than_the_url(lab):
    facts = facts_with(line("198.51.100.10", 4000, "litellm"))
    result = optillm_upstream_litellm.optillm_upstream_is_litellm(
        lab.service("optillm-proxy"),
        _settings({}, "http://127.0.0.1:4000/v1", ["http://127.0.0.1:4000/v1"]),
        lab,
        facts,
    )
    assert result.outcome is Outcome.VIOLATED and "does not listen there" in result.summary


@pytest.mark.parametrize(
    ("declared", "installed", "expected"),
    [
        ("transformers<5", "4.57.6", Outcome.PASSED),
        ("transformers>=4.40,<5.0", "4.57.6", Outcome.PASSED),
        ("transformers~=4.57", "4.57.6", Outcome.PASSED),
        ("transformers==4.57.6", "4.57.6", Outcome.PASSED),
        ("transformers", "4.57.6", Outcome.VIOLATED),
        ("transformers>=4.40", "4.57.6", Outcome.VIOLATED),
        ("transformers<6", "4.57.6", Outcome.VIOLATED),
        ("transformers<5", "5.0.0", Outcome.VIOLATED),
        ("transformers!=5.0.0", "4.57.6", Outcome.VIOLATED),
    ],
)
def test_transformers_pin(lab, declared, installed, expected):
    service = lab.service("optillm-local")
    venv = "/Users/thestudio/gateway/layer-gateway/optillm-local/.venv"
    facts = HostFacts(
        "studio",
        packages={
            venv: {"site_packages": [venv + "/lib/python3.11/site-packages"], "packages": {"transformers": installed}}
        },
    )
    key = "optillm-local:layer-gateway/optillm-local/requirements.txt"
    facts.files[key] = FileFact(
        "requirements.txt", "/x/requirements.txt", True, f"optillm==0.3.20\n{declared}  # pin\n", None
    )
    result = transformers_pin.judge_pin(service, facts, venv, key)
    assert result.outcome is expected, result.render()


def test_hf_token_presence_never_shows_the_value(lab):
    port = next(p for p in lab.ports if p.port == 4040)
    result = hf_token_for_gated_pulls.judge_token(lab.service("optillm-local"), port, {"HF_TOKEN": "hf_secretsecret"})
    assert result.outcome is Outcome.PASSED and "hf_secretsecret" not in result.render()
    missing = hf_token_for_gated_pulls.judge_token(lab.service("optillm-local"), port, {})
    assert missing.outcome is Outcome.VIOLATED


def test_broken_secret_env_file_names_the_line_but_never_shows_it(lab):
    facts = HostFacts("mini")
    key = "optillm-proxy:/etc/optillm-proxy/env"
    facts.files[key] = FileFact(
        "/etc/optillm-proxy/env",
        "/etc/optillm-proxy/env",
        True,
        "OPTILLM_HOST=127.0.0.1\nmysterycredential-0a1b2c3d4e\n",
        None,
        secret=True,
    )
    result = file_parses.judge_file("/etc/optillm-proxy/env", "env", facts.files.get(key))
    assert result.outcome is Outcome.VIOLATED
    assert "line 2" in result.render() and "mysterycredential" not in result.render()
