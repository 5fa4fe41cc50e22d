"""Fixtures for the attacker's-side tests: the auth and proxy gateways of tests/auth and
tests/proxy (real upstream, real sockets, real store)."""

from tests.auth.conftest import make_gateway  # noqa: F401 - fixture
from tests.proxy.conftest import upstream  # noqa: F401 - fixture
