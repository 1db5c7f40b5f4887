"""Shared fixtures: private Mosquitto brokers and the PostgreSQL URL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy

from tests.brokers import Mosquitto, running

PG_URL = os.environ.get("HUB_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One private anonymous Mosquitto shared by the session's tests (unique topics per test)."""
    with running(Mosquitto(tmp_path_factory.mktemp("mosquitto"))) as broker:
        yield broker


@pytest.fixture
def own_mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A private Mosquitto for one test, which it may stop and restart."""
    broker = Mosquitto(tmp_path)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The PostgreSQL test database; skipped with a plain reason off CI, a failure on CI."""
    try:
        engine = sqlalchemy.create_engine(PG_URL)
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:  # the driver raises many types; any of them means "not here"
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not reachable at {PG_URL} ({type(exc).__name__}); .ci/run starts it")
    return PG_URL
