"""A farm run several integration tests compare against, made once for the session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def reference_run(triton_server) -> dict:
    """The summary of one farm run of `REFERENCE_EVENTS` events (test_farm_run's configuration:
    60 Hz, two workers of one slot), every call answered by the session's server (a 400 ms
    deadline it always meets, so no event falls back). The fallback, slot and replay tests
    compare their decisions with it event by event; they only read it."""
    from farm.one_host import run_farm
    from tests.integration.test_farm_run import REFERENCE_EVENTS, config

    return run_farm(config(inference={"triton_url": triton_server.grpc_url, "timeout_ms": 400.0}),
                    n_events=REFERENCE_EVENTS, output_dir=None)
