"""Session-wide test settings: servers are real, and under CI a missing one fails the run."""

from __future__ import annotations

import os
import sys

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "capability(name): needs a declared backend capability")


@pytest.fixture(scope="session", autouse=True)
def _stop_servers_at_exit() -> object:
    yield
    servers = sys.modules.get("checkpoint_base.testing.servers")
    if servers is not None:  # only when some test started a server
        servers.stop_all()
