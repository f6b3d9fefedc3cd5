"""The inventory: the production transcription loads, and broken inventories are refused
with the file, the line and the field named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conformance.cli import main as cli_main
from conformance.inventory.loader import InventoryError, load_inventory
from selftest.conftest import INVENTORY_DIR


def test_gateway_inventory_transcribes_the_seed():
    inventory = load_inventory(INVENTORY_DIR / "gateway.yaml", environ={})
    assert inventory.layer.owner == "gateway-agent"
    assert {s.name for s in inventory.services} == {"litellm-orch", "optillm-proxy", "optillm-local", "system-monitor"}
    ports = {p.port: p for p in inventory.ports}
    assert sorted(ports) == [4000, 4020, 4040, 4041, 4042, 4090]
    assert (ports[4090].service, ports[4090].bind, ports[4090].exposure) == ("system-monitor", "127.0.0.1", "local")
    assert (ports[4000].bind, ports[4000].exposure) == ("0.0.0.0", "lan")
    assert (ports[4020].bind, ports[4020].exposure) == ("127.0.0.1", "local")
    assert ports[4042].state == "reserved"
    assert inventory.service("optillm-local").state == "disabled"
    assert inventory.service("optillm-local").hf_cache == "/Users/thestudio/models/hf/hub"
    assert inventory.service("optillm-local").package_pins == {"transformers": "<5"}
    assert inventory.service("optillm-proxy").upstream_service == "litellm-orch"
    assert inventory.service("system-monitor").state == "enabled"
    assert inventory.service("system-monitor").unit.name == "gateway-conformance-monitor.service"
    assert inventory.host("studio").service_manager == "launchd"
    assert inventory.host("mini").service_manager == "systemd"
    assert {c.check_id for c in inventory.contracts} >= {
        "clients-call-litellm-only",
        "optillm-never-exposed",
        "optillm-upstream-litellm",
        "gateway-never-runs-inference",
        "showroom-backroom",
        "hf-cache-path",
        "transformers-pin",
    }
    paths = {h.path for h in inventory.health_checks if h.service == "litellm-orch"}
    assert paths == {"/health", "/health/readiness", "/health/liveliness"}
    assert all(host.address is None for host in inventory.hosts), "addresses are per site"
    assert inventory.owner_of(inventory.service("optillm-local")) == "gateway-agent"
    assert inventory.owner_of(inventory.service("optillm-proxy")) == "optillm-proxy"


def test_lab_inventory_differs_from_production_only_where_a_site_may():
    production = load_inventory(INVENTORY_DIR / "gateway.yaml", environ={})
    lab = load_inventory(INVENTORY_DIR / "lab.yaml", environ={})
    assert [c.model_dump() for c in lab.contracts] == [c.model_dump() for c in production.contracts]
    assert [o.model_dump() for o in lab.owners] == [o.model_dump() for o in production.owners]
    assert lab.health_checks == production.health_checks
    assert lab.dependencies == production.dependencies
    site_fields = {"model", "env_file", "unit"}
    for lab_port, prod_port in zip(lab.ports, production.ports, strict=True):
        assert lab_port.model_dump(exclude=site_fields) == prod_port.model_dump(exclude=site_fields)
    service_site_fields = {"user", "repo_root", "venv", "state", "state_reason", "poll_interval"}
    for lab_service, prod_service in zip(lab.services, production.services, strict=True):
        assert lab_service.model_dump(exclude=service_site_fields) == prod_service.model_dump(
            exclude=service_site_fields
        )


def test_site_values_come_from_the_environment(tmp_path):
    inventory = load_inventory(
        INVENTORY_DIR / "gateway.yaml",
        environ={
            "CONFORMANCE_HOST_MINI_ADDRESS": "10.0.0.5",
            "CONFORMANCE_HOST_MINI_USER": "watcher",
            "CONFORMANCE_HOST_STUDIO_KNOWN_HOSTS": str(tmp_path / "kh"),
        },
    )
    assert inventory.host("mini").address == "10.0.0.5"
    assert inventory.host("mini").ssh.user == "watcher"
    assert inventory.host("mini").ssh.sudo is True, "fields the site did not give are kept"
    assert inventory.host("studio").ssh.known_hosts == str(tmp_path / "kh")


def test_site_override_file(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text("hosts:\n  - name: studio\n    address: studio.lan\n    ssh: {user: mon, known_hosts: kh}\n")
    inventory = load_inventory(INVENTORY_DIR / "gateway.yaml", site=site, environ={})
    assert inventory.host("studio").address == "studio.lan"
    assert inventory.host("studio").ssh.known_hosts == str((tmp_path / "kh").resolve())


# Each broken inventory: a text edit of gateway.yaml, the field the error must name, and a
# phrase of what was expected.
BROKEN = {
    "typo-in-key": (
        "    bind: 127.0.0.1\n    exposure: local",
        "    bind: 127.0.0.1\n    exposre: local",
        "ports[1].exposre",
        "did you mean 'exposure'",
    ),
    "unknown-top-level": ("schema_version: 1\n", "schema_version: 1\nservicez: []\n", "servicez", "unknown key"),
    "bad-port-number": ("  - port: 4020\n", "  - port: 70000\n", "ports[1].port", "less than or equal to 65535"),
    "bad-bind": (
        "    bind: 127.0.0.1\n    exposure: local",
        "    bind: localhost\n    exposure: local",
        "ports[1].bind",
        "must be an IP address",
    ),
    "port-of-unknown-service": (
        "    service: optillm-proxy\n    bind: 127.0.0.1",
        "    service: optilm-proxy\n    bind: 127.0.0.1",
        "ports[1].service",
        "did you mean 'optillm-proxy'",
    ),
    "service-on-unknown-host": (
        "    kind: litellm\n    host: mini",
        "    kind: litellm\n    host: mac-mini",
        "services[0].host",
        "no host named 'mac-mini'",
    ),
    "port-bound-twice": ("  - port: 4020\n", "  - port: 4000\n", "ports[1].port", "already declared"),
    "dependency-to-nowhere": (
        "  - source: optillm-proxy\n    target: litellm-orch",
        "  - source: optillm-proxy\n    target: lite-llm",
        "dependencies[0].target",
        "no service named 'lite-llm'",
    ),
    "local-exposure-on-lan-bind": (
        "    bind: 127.0.0.1\n    exposure: local",
        "    bind: 0.0.0.0\n    exposure: local",
        "ports[1].bind",
        "needs a loopback bind",
    ),
    "missing-required-field": ("    kind: litellm\n", "", "services[0].kind", "required field is missing"),
    "wrong-os": ("    os: macos\n", "    os: darwin\n", "hosts[1].os", "'linux' or 'macos'"),
    "unknown-owner": (
        "    owner: optillm-proxy\n    upstream_service",
        "    owner: optillm-team\n    upstream_service",
        "services[1].owner",
        "no owner named 'optillm-team'",
    ),
    "contract-check-not-kebab-case": (
        "  - id: transformers-pin\n",
        "  - id: transformers-pin\n    check: transformers_pin\n",
        "contracts[7].check",
        "should match pattern",
    ),
    "duplicate-yaml-key": (
        "    tier: gateway\n    role: Primary",
        "    tier: gateway\n    tier: gateway\n    role: Primary",
        "",
        "duplicate key 'tier'",
    ),
    "health-check-on-undeclared-port": (
        "    port: 4000\n    path: /health/readiness",
        "    port: 4001\n    path: /health/readiness",
        "health_checks[1].port",
        "declares no port 4001",
    ),
    "unit-manager-mismatch": (
        "      manager: systemd\n      name: litellm-orch.service",
        "      manager: launchd\n      name: litellm-orch.service",
        "services[0].unit.manager",
        "uses systemd, not launchd",
    ),
    # Values that reach a command line on a host follow the real program's grammar.
    "unit-name-is-an-option": (
        "      name: litellm-orch.service",
        "      name: -Hroot@elsewhere.service",
        "services[0].unit.name",
        "would be read as an option",
    ),
    "unit-name-not-systemd": (
        "      name: litellm-orch.service",
        "      name: litellm orch.service",
        "services[0].unit.name",
        "not a valid systemd unit name",
    ),
    "unit-name-unknown-type": (
        "      name: litellm-orch.service",
        "      name: litellm-orch.servic",
        "services[0].unit.name",
        "unknown unit type",
    ),
    "unit-path-relative": (
        "      path: /etc/systemd/system/litellm-orch.service",
        "      path: etc/systemd/system/litellm-orch.service",
        "services[0].unit.path",
        "must be absolute",
    ),
    "file-path-control-character": (
        "      - path: /etc/optillm-proxy/env",
        '      - path: "/etc/optillm-proxy/env\\x1b"',
        "services[1].files[0].path",
        "control character",
    ),
    "file-path-option": (
        "      - path: /etc/optillm-proxy/env",
        "      - path: --help",
        "services[1].files[0].path",
        "would be read as an option",
    ),
    "invalid-yaml": ("layer:\n  name: gateway", "layer:\n  name: [gateway", "", "invalid YAML"),
    "not-a-mapping": (None, "- just\n- a list\n", "", "must be a YAML mapping"),
}


def _write_broken(tmp_path: Path, original: str, old: str | None, new: str) -> Path:
    if old is None:
        text = new
    else:
        assert old in original, f"fixture drifted: {old!r} not in gateway.yaml"
        text = original.replace(old, new, 1)
    path = tmp_path / "broken.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_inventory_names_file_line_and_field(name, tmp_path, gateway_yaml_text):
    old, new, field, expected = BROKEN[name]
    path = _write_broken(tmp_path, gateway_yaml_text, old, new)
    with pytest.raises(InventoryError) as caught:
        load_inventory(path, environ={})
    text = str(caught.value)
    assert expected in text
    issue = next(issue for issue in caught.value.issues if expected in issue.message)
    assert issue.mark is not None and issue.mark.file.endswith("broken.yaml")
    assert issue.mark.line >= 1
    if field:
        assert issue.field == field
    # The line named really is where the problem is: for an edited line, the edit.
    if old is not None and new:
        edited_lines = {
            number
            for number, line in enumerate(path.read_text().splitlines(), 1)
            if line.strip() and line not in gateway_yaml_text.splitlines()
        }
        if edited_lines and name not in {"missing-required-field"}:
            # PyYAML marks an unclosed bracket where it notices it: the line after.
            near = (
                {line + delta for line in edited_lines for delta in (-1, 0, 1)}
                if name == "invalid-yaml"
                else edited_lines
            )
            assert issue.mark.line in near | {min(edited_lines) - 1}, (issue, edited_lines)


def test_error_in_extending_file_names_that_file(tmp_path, gateway_yaml_text):
    (tmp_path / "gateway.yaml").write_text(gateway_yaml_text)
    child = tmp_path / "site-lab.yaml"
    child.write_text("extends: gateway.yaml\nhosts:\n  - name: mini\n    adress: 10.1.1.1\n")
    with pytest.raises(InventoryError) as caught:
        load_inventory(child, environ={})
    issue = caught.value.issues[0]
    assert issue.mark.file.endswith("site-lab.yaml") and issue.mark.line == 4
    assert "did you mean 'address'" in issue.message


def test_all_problems_are_reported_at_once(tmp_path, gateway_yaml_text):
    text = gateway_yaml_text.replace("  - port: 4020\n", "  - port: 4000\n").replace(
        "    kind: litellm\n    host: mini", "    kind: litellm\n    host: nowhere"
    )
    path = tmp_path / "two.yaml"
    path.write_text(text)
    with pytest.raises(InventoryError) as caught:
        load_inventory(path, environ={})
    assert len(caught.value.issues) >= 2


def test_cli_inventory_check(tmp_path, gateway_yaml_text, capsys):
    assert cli_main(["inventory", "check", str(INVENTORY_DIR / "gateway.yaml")]) == 0
    assert "OK" in capsys.readouterr().out
    path = _write_broken(tmp_path, gateway_yaml_text, *BROKEN["typo-in-key"][:2])
    assert cli_main(["inventory", "check", str(path)]) != 0
    err = capsys.readouterr().err
    assert re.search(r"broken\.yaml:\d+:\d+: ports\[1\]\.exposre: unknown key", err), err


def test_relative_key_paths_resolve_against_the_file_that_names_them(tmp_path):
    child = tmp_path / "elsewhere" / "site-lab.yaml"
    child.parent.mkdir()
    child.write_text(f"extends: {INVENTORY_DIR / 'lab.yaml'}\nhosts:\n  - name: studio\n    ssh: {{known_hosts: kh}}\n")
    inventory = load_inventory(child, environ={})
    assert inventory.host("mini").ssh.known_hosts == str((INVENTORY_DIR / ".." / ".lab" / "known_hosts").resolve())
    assert inventory.host("studio").ssh.known_hosts == str(child.parent / "kh")


BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_yaml_alias_bomb_is_refused_quickly(tmp_path, gateway_yaml_text):
    import time

    path = tmp_path / "bomb.yaml"
    path.write_text(
        gateway_yaml_text + "\nnotes_bomb:\n" + "".join("  " + line + "\n" for line in BILLION_LAUGHS.splitlines())
    )
    started = time.monotonic()
    with pytest.raises(InventoryError) as caught:
        load_inventory(path, environ={})
    assert time.monotonic() - started < 2
    text = str(caught.value)
    assert "alias bomb" in text and "bomb.yaml:" in text
    assert len(text) < 2000, "the refused input is never repr'd whole into the message"


def test_a_huge_wrong_value_is_never_repred_whole_into_the_message(tmp_path, gateway_yaml_text):
    path = tmp_path / "wide.yaml"
    huge = "[" + ",".join(["12345"] * 3000) + "]"
    path.write_text(gateway_yaml_text.replace("    title: OptiLLM proxy\n", f"    title: {huge}\n", 1))
    with pytest.raises(InventoryError) as caught:
        load_inventory(path, environ={})
    assert "services[1].title" in str(caught.value)
    assert len(str(caught.value)) < 1000


def test_inventory_size_bound(tmp_path, gateway_yaml_text):
    """Inventories are bounded at 1 MiB (refused at once); up to it they load fast."""
    import time

    from conformance.inventory.yamlsrc import MAX_INVENTORY_BYTES

    notes = "".join(f"      - note {i} " + "x" * 60 + "\n" for i in range(200_000))
    huge = tmp_path / "huge.yaml"
    huge.write_text(gateway_yaml_text.replace("    notes:\n", "    notes:\n" + notes, 1))
    assert huge.stat().st_size > 10 * 1024 * 1024
    started = time.monotonic()
    with pytest.raises(InventoryError, match=r"larger than the 1 MiB an inventory may be"):
        load_inventory(huge, environ={})
    assert time.monotonic() - started < 1
    line_length = len(notes.splitlines(keepends=True)[-1])
    lines_that_fit = (MAX_INVENTORY_BYTES - len(gateway_yaml_text)) // line_length - 10
    big = tmp_path / "big.yaml"
    big.write_text(gateway_yaml_text.replace("    notes:\n", "    notes:\n" + notes[: lines_that_fit * line_length], 1))
    assert big.stat().st_size <= MAX_INVENTORY_BYTES
    started = time.monotonic()
    load_inventory(big, environ={})
    assert time.monotonic() - started < 5
