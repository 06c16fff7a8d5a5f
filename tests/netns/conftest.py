"""Fixtures for tests across emulated hosts (network namespaces); they skip where none can be made."""

from __future__ import annotations

import pytest

from netns_lab import NetnsLab, skip_reason


@pytest.fixture(scope="session")
def netns_possible() -> None:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def lab_factory(netns_possible):
    """Make labs of named hosts; every one is removed at teardown, even when the test fails."""
    labs: list[NetnsLab] = []

    def make(hosts: list[str]) -> NetnsLab:
        lab = NetnsLab(hosts).__enter__()
        labs.append(lab)
        return lab

    yield make
    for lab in labs:
        lab.close()
