"""Fixtures for tests that need the real tritonserver and real farm processes."""

from __future__ import annotations

import pytest

from farm.triton_server import TritonServer
from farm.fault_scenarios import SLOW_MODEL_REPOSITORY
from trigger_sim.config import MODEL_REPOSITORY


@pytest.fixture(scope="session")
def triton_server():
    """One real tritonserver on loopback for the session; stopped (and its shm removed) at the end."""
    server = TritonServer(MODEL_REPOSITORY, start_timeout_s=90)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def slow_triton_server():
    """A real tritonserver whose jet_tagger answers only after 50 ms (same weights)."""
    server = TritonServer(SLOW_MODEL_REPOSITORY, start_timeout_s=90)
    server.start()
    try:
        yield server
    finally:
        server.stop()
