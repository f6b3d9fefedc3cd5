"""The other direction of drift: the inventory says one thing, the live host another.
The checks that compare a declared value with the host fail with a message naming both."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.lab

CASES = {
    "wrong-hostname": (
        "hosts:\n  - name: studio\n    hostname: studio-2\n",
        "test_host_identity[studio]",
        "hostname is 'studio', inventory says 'studio-2'",
    ),
    "wrong-service-account": (
        "services:\n  - name: litellm-orch\n    user: optillm\n",
        "test_service_account[mini/litellm-orch]",
        "litellm-orch.service runs as 'litellm', not as 'optillm'",
    ),
    "missing-config-file": (
        "services:\n  - name: litellm-orch\n    files:\n      - path: layer-gateway/litellm-orch/config/extra.yaml\n"
        "        role: config\n        format: yaml\n",
        "test_file_parses[mini/litellm-orch:layer-gateway/litellm-orch/config/extra.yaml]",
        "/srv/gateway/layer-gateway/litellm-orch/config/extra.yaml does not exist",
    ),
    "wrong-model": (
        "ports:\n  - host: studio\n    port: 4041\n    model: labtiny/tiny-chat-fast\n",
        "test_health_endpoint[studio/optillm-local:4041/v1/models]",
        "not the instance's model labtiny/tiny-chat-fast",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_inventory_disagreeing_with_the_host_fails(name, run_suites, tmp_path):
    overlay, test_id, phrase = CASES[name]
    site = tmp_path / "site.yaml"
    site.write_text(overlay)
    run = run_suites(f"--site={site}")
    assert run.exit_code == 1, run.output
    assert any(test_id in line for line in run.failed()), run.output
    assert phrase in run.output, run.output
