"""Hosts on one machine: a Linux network namespace each, a veth pair to one bridge, an address of its own.

Faults are made without netem or iptables (neither is in this kernel): a partition between two hosts gives each
a permanent neighbour entry for the other that points at a MAC address nobody has, so their packets are
dropped on the bridge in silence, exactly as on a dead network path (sockets hang, connects time out); a host is
lost by killing every process in its namespace and taking its link down.

Every name starts with PREFIX; the bridge's alias records the pid of the run that owns them, so a run that was
killed leaves nothing a later run does not remove first.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil

PREFIX = "vah-"  # videoapi hosts
BRIDGE = f"{PREFIX}br"
SUBNET = "10.238.7"
GATEWAY = f"{SUBNET}.1"  # the bridge's own address: the test process (the client's host) lives there
NOWHERE_MAC = "02:00:5e:ff:ff:01"  # a locally administered address no interface has


class NetworkError(RuntimeError):
    """An `ip` command failed, or another live run owns the hosts."""


def ip(*args: str, check: bool = True) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def available() -> str | None:
    """None when this machine can make namespaces, veth pairs and bridges; else why not."""
    if os.geteuid() != 0:
        return "needs root (ip netns)"
    probe = f"{PREFIX}probe"
    try:
        ip("netns", "add", probe)
        ip("link", "add", f"{PREFIX}p0", "type", "veth", "peer", "name", "eth0", "netns", probe)
        ip("link", "add", f"{PREFIX}pbr", "type", "bridge")
    except (NetworkError, FileNotFoundError) as exc:
        return str(exc)
    finally:
        ip("link", "del", f"{PREFIX}p0", check=False)
        ip("link", "del", f"{PREFIX}pbr", check=False)
        ip("netns", "del", probe, check=False)
    return None


@dataclass
class Host:
    """One machine: a namespace named PREFIX+name whose eth0 has `address` on the bridge."""

    name: str
    address: str
    mac: str = ""

    @property
    def namespace(self) -> str:
        return f"{PREFIX}{self.name}"

    @property
    def link(self) -> str:
        """The veth end on the bridge (in the root namespace)."""
        return f"{PREFIX}{self.name}"

    @property
    def run(self) -> list[str]:
        """The prefix that runs a command on this host: its network and its own hostname (the namespace's name)."""
        hostname = 'hostname "$0" && exec "$@"'
        return ["ip", "netns", "exec", self.namespace, "unshare", "--uts", "sh", "-c", hostname, self.namespace]

    def pids(self) -> list[int]:
        return [int(p) for p in ip("netns", "pids", self.namespace, check=False).split()]


def remove_leftovers() -> list[str]:
    """Remove the namespaces and links a killed run left (never a live run's: that raises); what was removed."""
    removed: list[str] = []
    alias = ip("-o", "link", "show", BRIDGE, check=False)
    if "alias pid=" in alias:
        owner = int(alias.split("alias pid=", 1)[1].split()[0])
        if owner != os.getpid() and psutil.pid_exists(owner):
            raise NetworkError(f"hosts {PREFIX}* belong to the live process {owner}; run one harness at a time")
    for line in ip("netns", "list").splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(PREFIX):
            for pid in ip("netns", "pids", name, check=False).split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            ip("netns", "del", name, check=False)
            removed.append(name)
    for line in ip("-o", "link", "show").splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name.startswith(PREFIX):
            ip("link", "del", name, check=False)
            removed.append(name)
    return removed


@dataclass
class Network:
    """The bridge and its hosts; a context manager that removes everything it made, processes first."""

    hosts: dict[str, Host] = field(default_factory=dict)
    processes: list[subprocess.Popen[Any]] = field(default_factory=list)
    partitions: set[tuple[str, str]] = field(default_factory=set)
    leftovers: list[str] = field(default_factory=list)

    def __enter__(self) -> Network:
        self.leftovers = remove_leftovers()
        try:
            ip("link", "add", BRIDGE, "type", "bridge")
            ip("link", "set", BRIDGE, "alias", f"pid={os.getpid()}")
            ip("addr", "add", f"{GATEWAY}/24", "dev", BRIDGE)
            ip("link", "set", BRIDGE, "up")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, name: str) -> Host:
        """A new host with the next free address."""
        host = Host(name, f"{SUBNET}.{len(self.hosts) + 2}")
        self.hosts[name] = host
        ip("netns", "add", host.namespace)
        ip("link", "add", host.link, "type", "veth", "peer", "name", "eth0", "netns", host.namespace)
        ip("link", "set", host.link, "master", BRIDGE, "up")
        ip("-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", "eth0")
        ip("-n", host.namespace, "link", "set", "eth0", "up")
        ip("-n", host.namespace, "link", "set", "lo", "up")
        host.mac = ip("-n", host.namespace, "-o", "link", "show", "eth0").split("link/ether ", 1)[1].split()[0]
        return host

    def spawn(
        self, host: Host, argv: list[str], *, env: dict[str, str] | None = None, log: Path | None = None
    ) -> subprocess.Popen[bytes]:
        """Start a process on `host` in a session of its own (stopped with the network)."""
        out: IO[bytes] | int = open(log, "ab") if log else subprocess.DEVNULL
        process = subprocess.Popen(
            [*host.run, *argv],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if not isinstance(out, int):
            out.close()  # the child holds its own descriptor
        self.processes.append(process)
        return process

    def partition(self, a: Host, b: Host) -> None:
        """Cut the path between a and b both ways, silently (packets dropped, nothing refused)."""
        for here, there in ((a, b), (b, a)):
            neighbour = [there.address, "lladdr", NOWHERE_MAC, "dev", "eth0", "nud", "permanent"]
            ip("-n", here.namespace, "neigh", "replace", *neighbour)
        self.partitions.add((a.name, b.name))

    def heal(self, a: Host, b: Host) -> None:
        """Mend a partition: each host learns the other's real address again."""
        for here, there in ((a, b), (b, a)):
            neighbour = [there.address, "lladdr", there.mac, "dev", "eth0", "nud", "reachable"]
            ip("-n", here.namespace, "neigh", "replace", *neighbour)
        self.partitions.discard((a.name, b.name))

    def lose(self, host: Host) -> None:
        """The host is gone: every process in it killed at once, its link down."""
        for pid in host.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        ip("link", "set", host.link, "down")

    def restore(self, host: Host) -> None:
        """A lost host's link up again (its processes are the caller's to start)."""
        ip("link", "set", host.link, "up")

    def kill(self, host: Host) -> None:
        """Every process on the host killed (a crash), its link left up."""
        for pid in host.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while host.pids() and time.monotonic() < deadline:
            time.sleep(0.05)

    def close(self) -> None:
        """Stop every process, then remove every namespace and link: also after a failed start or test."""
        for process in self.processes:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 10
        for process in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait(5)
        for host in self.hosts.values():
            for pid in host.pids():  # anything else still in it (a forked child that left its group)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            ip("netns", "del", host.namespace, check=False)
            ip("link", "del", host.link, check=False)
        ip("link", "del", BRIDGE, check=False)
        self.hosts.clear()
