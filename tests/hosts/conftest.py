"""One stack of hosts for the module's fault tests: started once, every namespace and process removed after."""

from __future__ import annotations

import pytest

from tests.hosts.network import Network, available
from tests.hosts.stack import HostStack


@pytest.fixture(scope="session")
def hosts(model_repository, tmp_path_factory):
    """The service across network namespaces (needs root: CI runs as root; deselect with -m 'not network_faults')."""
    problem = available()
    if problem is not None:
        pytest.fail(f"network namespaces unavailable on this machine: {problem}")
    logs = tmp_path_factory.mktemp("hosts")
    with Network() as net:
        stack = HostStack(net, logs, model_repository)
        try:
            yield stack.start()
        finally:
            stack.stop()
