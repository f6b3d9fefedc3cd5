"""Secrets never reach any output: the Secret type, shapes, known values, and every leak
path that was found (parse errors, URL userinfo, repr of router entries, JSON escaping)."""

from __future__ import annotations

import json

import pytest
import yaml

from conformance import redact
from conformance.facts.environment import instance_environment, optillm_settings
from conformance.facts.model import FactUnavailable, FileFact, HostFacts, UnitFact
from conformance.facts.routing import build_model_graph
from conformance.inventory.loader import load_inventory
from conformance.results import Outcome, Result, Subject, broken
from selftest.conftest import INVENTORY_DIR


@pytest.fixture(scope="module")
def lab():
    return load_inventory(INVENTORY_DIR / "lab.yaml", environ={})


def test_secret_type_renders_as_mask_everywhere():
    secret = redact.Secret("canary-secret-type-0001")
    old_style = "%s" % (secret,)  # noqa: UP031 - the printf-style path too
    for shown in (str(secret), repr(secret), f"{secret}", f"{secret!s:>30}", old_style, json.dumps(str(secret))):
        assert "canary-secret-type-0001" not in shown
    assert secret.reveal() == "canary-secret-type-0001"
    # Put in evidence by accident: the Result masks it, in text and in JSON.
    result = broken(f"key is {secret}", evidence={"header": f"Bearer {secret}"})
    assert "canary-secret-type" not in result.render() + result.to_json()
    # Even the revealed value, once in a Result, is masked (the constructor registered it).
    leaky = broken(f"sent {secret.reveal()}")
    assert "canary-secret-type" not in leaky.render()
    with pytest.raises(TypeError):
        __import__("pickle").dumps(secret)


SHAPES = [
    ("Authorization: Basic dXNlcjpjYW5hcnlwYXNz", "dXNlcjpjYW5hcnlwYXNz"),
    ("authorization=Token canarytoken12345", "canarytoken12345"),
    ("--optillm-api-key canary-argv-value-1", "canary-argv-value-1"),
    ("--api-key=canary-argv-value-2 --port 4020", "canary-argv-value-2"),
    ("GET http://h:4000/health?auth=canaryqueryauth&x=1", "canaryqueryauth"),
    ("http://h/v1?token=canaryquerytoken", "canaryquerytoken"),
    ('{"api_key": "canary json value", "x": 1}', "canary json value"),
    ('{"master_key": "canary\\"quoted\\"value"}', 'canary\\"quoted'),
    ("{'api_key': 'canary-repr-value'}", "canary-repr-value"),
    ("  master_key: canary-yaml-value", "canary-yaml-value"),
    ("OPENAI_API_KEY=canary value with spaces", "value with spaces"),
    ('HF_TOKEN="canary quoted value"', "quoted value"),
    ("base_url http://canaryuser:canarypass@198.51.100.10:4000/v1", "canarypass"),
    ("base_url http://canaryuser:canarypass@198.51.100.10:4000/v1", "canaryuser"),
    ("redis://:canaryredispw@cache:6379/0", "canaryredispw"),
]


@pytest.mark.parametrize(("text", "secret"), SHAPES, ids=[text[:40] for text, _ in SHAPES])
def test_credential_shapes_are_masked(text, secret):
    assert secret not in redact.redact(text)


NOT_SECRETS = [
    "needs the litellm-master-key secret: export LITELLM_MASTER_KEY, add a line for LITELLM_MASTER_KEY to the file",
    "TOKENIZERS_PARALLELISM=false",
    "/opt/optillm-proxy/venv/lib/python3.11/site-packages",
    "port 4020 is bound to 0.0.0.0, declared 127.0.0.1 only",
    "the token count is 12",
]


@pytest.mark.parametrize("text", NOT_SECRETS)
def test_ordinary_text_is_not_masked(text):
    redact.register_env_values({"TOKENIZERS_PARALLELISM": "false", "X_KEY": "venv", "HF_TOKEN": "1"})
    redact.register_secret("lib")
    assert redact.redact(text) == text


def test_credential_names_are_word_parts():
    assert all(
        redact.is_secret_name(name)
        for name in ("HF_TOKEN", "OPENAI_API_KEY", "api-key", "master_key", "LITELLM_MASTER_KEY", "DB_PASSWORD")
    )
    assert not any(redact.is_secret_name(name) for name in ("TOKENIZERS_PARALLELISM", "KEYBOARD", "MONKEY", "HOST"))


def test_registered_value_split_across_a_line_break_is_masked():
    redact.register_secret("canarysplitvalue0123456789")
    assert "canarysplit" not in redact.redact("KEY=canarysplitval\\\nue0123456789")
    shown = redact.redact("evidence: canarysplitvalue01\n    23456789")
    assert "canarysplit" not in shown and "23456789" not in shown


@pytest.mark.parametrize(
    "value", ['canary"quote"12', "canary\\back\\slash", "canary\ttab\tvalue", "canary-ünïcødé-vàl"]
)
def test_registered_values_with_json_escapes_never_reach_the_json(value):
    redact.register_secret(value)
    result = Result(Outcome.VIOLATED, f"leaked {value}", evidence={"env": f"X={value}"}, subject=Subject("c", "h"))
    text = result.to_json()
    assert value not in text and json.dumps(value)[1:-1] not in text
    assert value not in json.loads(text)["summary"]


def _unit(name: str, argv: tuple[str, ...] = (), environment: dict[str, str] | None = None) -> UnitFact:
    return UnitFact(
        "systemd",
        name,
        True,
        True,
        "active (running)",
        True,
        "enabled",
        None,
        10,
        None,
        argv,
        environment or {},
        (),
        None,
    )


def _env_facts(lab, content: str) -> tuple[HostFacts, object, object]:
    service = lab.service("optillm-local")
    port = next(p for p in lab.ports if p.port == 4040)
    facts = HostFacts("studio")
    assert port.unit is not None and port.env_file
    facts.units[port.unit.name] = _unit(port.unit.name)
    facts.files[f"{service.name}:{port.env_file}"] = FileFact(
        port.env_file, "/srv/x/high.env", True, content, None, True
    )
    return facts, service, port


def test_instance_env_file_parse_error_never_shows_the_line(lab):
    """A key wrapped onto its own line: the line has no '=', and must not be printed."""
    facts, service, port = _env_facts(lab, "OPTILLM_API_KEY=sk-\ncanarywrappedkey0123456789\n")
    with pytest.raises(FactUnavailable) as caught:
        instance_environment(facts, service, port)
    assert "line 2" in str(caught.value) and "canarywrapped" not in str(caught.value)


def test_router_api_base_userinfo_and_entries_never_shown(lab):
    router = {
        "model_list": [
            {"litellm_params": {"model": "openai/x", "api_key": "canary-entry-api-key-0001"}},
            {
                "model_name": "elsewhere",
                "litellm_params": {"model": "openai/x", "api_base": "http://canaryuser2:canarypw2@203.0.113.5:9000/v1"},
            },
        ]
    }
    graph = build_model_graph(router, {}, lab, "litellm-orch")
    text = graph.describe() if hasattr(graph, "describe") else str(graph.leaves) + str(graph.notes)
    shown = text + json.dumps(graph.notes) + json.dumps(graph.leaves)
    assert "canary-entry-api-key" not in shown and "canarypw2" not in shown and "canaryuser2" not in shown
    assert "203.0.113.5:9000" in shown


def test_optillm_base_url_userinfo_not_in_evidence(lab):
    from conformance.contracts import optillm_upstream_litellm

    service = lab.service("optillm-proxy")
    facts = HostFacts("mini")
    assert service.unit is not None
    facts.units[service.unit.name] = _unit(
        service.unit.name,
        ("/opt/optillm-proxy/venv/bin/optillm", "--approach", "none"),
        {"OPTILLM_BASE_URL": "http://canaryuser3:canarypw3@127.0.0.1:4000/v1", "OPENAI_API_KEY": "sk-lab-canary4"},
    )
    settings = optillm_settings(facts, service)
    result = optillm_upstream_litellm.optillm_upstream_is_litellm(service, settings, lab, facts)
    text = result.render() + result.to_json()
    assert "canarypw3" not in text and "canaryuser3" not in text


def test_yaml_error_of_a_config_file_does_not_quote_its_line(lab):
    from conformance.contracts import file_parses

    service = lab.service("litellm-orch")
    router = next(f for f in service.files if f.role == "router_config")
    facts = HostFacts("mini")
    key = f"{service.name}:{router.path}"
    content = "model_list:\n  - model_name: x\n    api_base: http://h/v1 canary-yaml-error-0001: x\n"
    facts.files[key] = FileFact(router.path, "/srv/gateway/router.yaml", True, content, None, False)
    with pytest.raises(yaml.YAMLError):
        yaml.safe_load(content)
    result = file_parses.judge_file(router.path, "yaml", facts.files.get(key))
    assert result.outcome is Outcome.VIOLATED and "canary-yaml-error" not in result.render()


def test_a_results_json_is_made_again_once_a_secret_is_registered():
    # to_json is made once per check for several sinks; a secret known only later (read
    # from a host after the result was made) must still be masked in the next one.
    result = Result(outcome=Outcome.PASSED, summary="ok", evidence={"motd": "hello canary-late-secret-0042"})
    first = result.to_json()
    assert "canary-late-secret-0042" in first  # not a secret yet
    assert result.to_json() is first  # the same text, not made again
    redact.register_secret("canary-late-secret-0042")
    assert "canary-late-secret-0042" not in result.to_json()
