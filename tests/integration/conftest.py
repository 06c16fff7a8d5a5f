"""Fixtures for tests that need the real tritonserver and real farm processes."""

from __future__ import annotations

import pytest

from farm.triton_server import TritonServer
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
