"""Fixtures shared by every test that needs a real tritonserver: one server of each kind for
the whole run, started on first use, so the integration and fault tests that only call it do
not each pay for a start. Tests that kill or restart a server start their own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


def _running(repository: Path) -> Iterator:
    """A real tritonserver on loopback serving `repository`; stopped (and its shm removed) at the end."""
    from farm.triton_server import TritonServer

    with TritonServer(repository, start_timeout_s=90) as server:
        yield server


@pytest.fixture(scope="session")
def triton_server():
    """One real tritonserver serving the shipped model repository, for the session."""
    from trigger_sim.config import MODEL_REPOSITORY

    yield from _running(MODEL_REPOSITORY)


@pytest.fixture(scope="session")
def slow_triton_server():
    """A real tritonserver whose jet_tagger answers only after 50 ms (same weights), for the session."""
    from farm.fault_scenarios import SLOW_MODEL_REPOSITORY

    yield from _running(SLOW_MODEL_REPOSITORY)
