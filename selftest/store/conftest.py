"""Fixtures of the store's tests: a real SQLite file and a real, throwaway PostgreSQL."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from selftest.store.pgcluster import ThrowawayCluster, postgres_bin

_databases = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[ThrowawayCluster]:
    bindir = postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (scripts/setup.sh installs Debian's postgresql as root)")
    cluster = ThrowawayCluster(bindir).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster: ThrowawayCluster) -> str:
    """A new, empty database on the throwaway server (with its password in the URL)."""
    return postgres_cluster.create_database(f"test_{next(_databases)}")


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite+pysqlite:///{tmp_path / 'reports' / 'conformance.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request) -> str:
    """Each test that takes this runs against both databases."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
