"""Host-level checks, run inside each host over one SSH connection (facts gathered once)."""

import pytest

from conformance import evaluate
from conformance.assertions import expect

pytestmark = pytest.mark.hosts


def test_host_answers_and_is_the_declared_host(host_case):
    expect(host_case, evaluate.host_identity)


def test_unit_installed_enabled_active(unit_case):
    expect(unit_case, evaluate.unit_state)


def test_service_runs_as_its_account(service_case):
    expect(service_case, evaluate.service_user, needs_running=True)


def test_port_served_by_its_unit(port_owner_case):
    expect(port_owner_case, evaluate.port_served_by_unit, needs_running=True)


def test_port_bound_exactly_as_declared(port_case):
    expect(port_case, evaluate.port_binding, needs_running=True)


def test_reserved_port_is_free(reserved_port_case):
    expect(reserved_port_case, evaluate.reserved_port)


def test_no_unexpected_listeners(host_case):
    expect(host_case, evaluate.no_unexpected_listeners)


def test_declared_file_exists_and_parses(file_case):
    expect(file_case, evaluate.file_parses)
