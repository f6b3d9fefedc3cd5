"""Every contract proven twice on the real lab: green when conformant, red with a clear
message on a realistic drift, and green again after the drift is reset."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.lab

# drift -> (test that must fail (substring of its node id), phrases of its message, owner of the bulletin entry)
DRIFTS = {
    "optillm-exposed": (
        "test_optillm_reachable_only_on_localhost[",
        ["optillm-proxy is EXPOSED beyond localhost", "bound beyond loopback: 0.0.0.0:4020", "answers from the LAN"],
        "optillm-proxy",
    ),
    "optillm-upstream-elsewhere": (
        "test_optillm_upstream_is_litellm[",
        [
            "optillm-proxy's upstream is not litellm-orch",
            "http://198.51.100.11:4040/v1: host 198.51.100.11 is not mini",
        ],
        "optillm-proxy",
    ),
    "optillm-local-mode": (
        "test_gateway_never_runs_inference[gateway-never-runs-inference/mini/optillm-proxy]",
        ["runs inference itself", "OPTILLM_API_KEY"],
        "optillm-proxy",
    ),
    "routing-loop": (
        "test_no_routing_loop[",
        ["routing loop in the model graph", "litellm:loop-back -> optillm:loop-back -> litellm:loop-back"],
        "litellm-orch",
    ),
    "phantom-handle": (
        "test_only_present_models_get_handles[",
        ["handle 'studio-ghost' -> labtiny/absent-model at studio:4040: that model is not present there"],
        "litellm-orch",
    ),
    "litellm-stopped": (
        "test_unit_installed_enabled_active[mini/litellm-orch]",
        ["litellm-orch.service is not running (inactive (dead))"],
        "litellm-orch",
    ),
    "unit-disabled": (
        "test_unit_installed_enabled_active[mini/optillm-proxy]",
        ["optillm-proxy.service is not enabled (disabled)"],
        "optillm-proxy",
    ),
    "transformers-5": ("test_transformers_pinned_below_5[", ["does not satisfy <5"], "gateway-agent"),
    "requirements-unpinned": (
        "test_transformers_pinned_below_5[",
        ["declares transformers, which admits transformers 5.0.0", "a reinstall can break the <5 pin"],
        "gateway-agent",
    ),
    "hf-cache-moved": (
        "test_hf_cache_path[hf-cache-path/studio/optillm-local:4040]",
        ["uses HF cache /Users/thestudio/.cache/huggingface/hub, not /Users/thestudio/models/hf/hub"],
        "gateway-agent",
    ),
    "hf-token-missing": ("test_hf_token_for_gated_pulls[", ["no HF token for gated pulls"], "gateway-agent"),
    "extra-listener": (
        "test_no_unexpected_listeners[mini]",
        [
            "mini has listeners the inventory does not declare",
            "0.0.0.0:8088",
            "undeclared python3 on port 8088 is reachable from the LAN",
        ],
        "gateway-agent",
    ),
    "reserved-port-taken": (
        "test_reserved_port_is_free[studio/optillm-local:4042]",
        ["reserved port 4042 (fast) is taken by"],
        "gateway-agent",
    ),
    "high-loopback-only": (
        "test_dependency_reachable[dependencies-reachable/litellm-orch->optillm-local]",
        ["litellm-orch (mini) cannot reach optillm-local", "198.51.100.11:4040"],
        "litellm-orch",
    ),
    "port-impostor": (
        "test_port_served_by_its_unit[mini/optillm-proxy:4020]",
        ["port 4020 is served by python3", "not by optillm-proxy.service"],
        "optillm-proxy",
    ),
    "balanced-stopped": (
        "test_unit_installed_enabled_active[studio/optillm-local:4041]",
        ["optillm-local-balanced.service is not running"],
        "gateway-agent",
    ),
}


@pytest.mark.parametrize("drift", sorted(DRIFTS))
def test_drift_fails_the_right_contract_then_reset_restores_it(drift, run_suites, tmp_path):
    from conformance.lab import drift_apply, drift_reset

    test_id, phrases, owner = DRIFTS[drift]
    bulletin = tmp_path / "bulletin.jsonl"
    drift_apply(drift)
    try:
        run = run_suites(bulletin=bulletin)
    finally:
        drift_reset()
    assert run.exit_code == 1, run.output
    failing = [line for line in run.failed() if test_id in line]
    assert failing, f"{test_id} did not fail:\n{run.output}"
    for phrase in phrases:
        assert phrase in run.output, f"{phrase!r} missing:\n{run.output}"
    first_entries = run.entries()
    opened = [entry for entry in first_entries if entry["event"] == "opened"]
    assert opened, run.output
    # One problem, one entry: each opened entry is a distinct root cause, no duplicates.
    assert len({entry["fingerprint"] for entry in opened}) == len(opened)
    assert any(entry["owner"] == owner for entry in opened), opened
    # After the reset, a second run resolves every entry and opens nothing.
    again = run_suites(bulletin=bulletin)
    assert again.exit_code == 0, again.output
    events = [entry["event"] for entry in again.entries()[len(first_entries) :]]
    assert events == ["resolved"] * len(opened), events
