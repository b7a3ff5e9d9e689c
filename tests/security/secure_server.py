"""The TLS/ACL server the security tests run against (see conftest.py for the fixtures)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from bananas.embedded import free_port, server_binary

USER, PASSWORD = "bananas", "S3cret-Banana-Pw-42"
ADMIN, ADMIN_PASSWORD = "admin", "Adm1n-Pw-For-Tests"
#: Least privilege for a Bananas deployment: its own keys and channels, no dangerous
#: commands. (``test:*`` is where the test handlers record their runs.)
BANANAS_ACL = ["on", f">{PASSWORD}", "~bananas:*", "~test:*", "&bananas:*", "+@all", "-@dangerous"]


@dataclass
class SecureServer:
    port: int
    tls: bool
    ca_file: Path | None
    process: subprocess.Popen[bytes]
    log: Path
    why_no_tls: str = ""

    def url(self, user: str = USER, password: str = PASSWORD, *, ca: bool = True) -> str:
        if not self.tls:
            return f"redis://{user}:{password}@127.0.0.1:{self.port}/0"
        query = f"?ssl_ca_certs={self.ca_file}" if ca else ""
        return f"rediss://{user}:{password}@127.0.0.1:{self.port}/0{query}"

    def admin(self) -> redis.Redis:
        return redis.Redis.from_url(self.url(ADMIN, ADMIN_PASSWORD))


def make_certificates(folder: Path) -> Path | None:
    """CA + server certificate for 127.0.0.1 (EC keys: fast). None without openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=folder, check=True, capture_output=True, timeout=60)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=bananas-test-ca")
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "2", "-extfile", "san.cnf")  # fmt: skip
    return folder / "ca.crt"


def candidate_binaries() -> list[str]:
    found = [os.environ.get("BANANAS_TLS_SERVER_BINARY", ""), server_binary()]
    found += [shutil.which(name) or "" for name in ("redis-server", "valkey-server")]
    return list(dict.fromkeys(b for b in found if b))


def start(binary: str, folder: Path, tls_files: Path | None) -> SecureServer | None:
    port = free_port()
    acl = ["--user", "default", "off", "--user", USER, *BANANAS_ACL]
    acl += ["--user", ADMIN, "on", f">{ADMIN_PASSWORD}", "~*", "&*", "+@all"]
    if tls_files is not None:
        net = ["--port", "0", "--tls-port", str(port), "--tls-auth-clients", "no",
               "--tls-cert-file", str(tls_files / "server.crt"), "--tls-key-file", str(tls_files / "server.key"),
               "--tls-ca-cert-file", str(tls_files / "ca.crt")]  # fmt: skip
    else:
        net = ["--port", str(port)]
    log = folder / f"server-{port}.log"
    argv = [binary, *net, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(folder),
            "--logfile", str(log), *acl]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    server = SecureServer(port, tls_files is not None, tls_files / "ca.crt" if tls_files else None, process, log)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return None  # e.g. "Failed finding TLS support"
        with contextlib.suppress(redis.exceptions.ConnectionError), server.admin() as probe:
            if probe.ping():
                return server
        time.sleep(0.05)
    process.kill()
    process.wait()
    return None
