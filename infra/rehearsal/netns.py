"""Pod networking on one machine: a bridge, one network namespace + veth pair per pod.

Addresses come from 10.243.0.0/24 (the bridge is .1, the node address a kubelet probes from);
only addresses the rehearsal assigns are used, and every object it makes is named `rh-*` so a
crashed run's leftovers are found and removed by `cleanup_stale` at the next start. Cluster DNS
is a hosts file per namespace: `ip netns exec NS` bind-mounts /etc/netns/NS/hosts over /etc/hosts
for the process it starts (iproute2's netns_exec → bind_etc), and the file is rewritten in place
(same inode) so the bind mount sees every update, as a pod sees a DNS change.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

PREFIX = "rh-"
BRIDGE = "rh-br0"
SUBNET = ipaddress.ip_network("10.243.0.0/24")
NODE_IP = str(SUBNET.network_address + 1)
ETC_NETNS = Path("/etc/netns")


class NetError(RuntimeError):
    """An `ip`/`nft` command failed."""


def run(*args: str, check: bool = True, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(args), capture_output=True, text=True, input=input_text, timeout=60)
    if check and done.returncode != 0:
        raise NetError(f"{' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
    return done


def available() -> str:
    """Empty when netns pods can be made here; else why not."""
    if os.geteuid() != 0:
        return "the rehearsal needs root (network namespaces, veth, nftables, setpriv)"
    for tool in ("ip", "nft", "setpriv", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} not found"
    probe = f"{PREFIX}probe{os.getpid()}"
    done = run("ip", "netns", "add", probe, check=False)
    if done.returncode != 0:
        return f"ip netns add failed: {done.stderr.strip()}"
    run("ip", "netns", "del", probe, check=False)
    return ""


def namespaces() -> list[str]:
    out = run("ip", "netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def kill_namespace_processes(ns: str, grace_s: float = 5.0) -> None:
    """SIGTERM every process of namespace `ns`, SIGKILL what is left after `grace_s`."""
    kill_all([ns], grace_s)


def kill_all(names: list[str], grace_s: float) -> None:
    """SIGTERM every process of these namespaces together, SIGKILL what is left after `grace_s`."""
    existing = set(namespaces())
    names = [n for n in names if n in existing]

    def pids() -> list[int]:
        return [int(p) for n in names for p in run("ip", "netns", "pids", n, check=False).stdout.split()]
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 3.0)):
        for pid in pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + wait_s
        while time.time() < deadline and pids():
            time.sleep(0.2)


def rss_bytes() -> int:
    """Resident memory of every process in an rh-* namespace, summed."""
    total = 0
    for ns in namespaces():
        if not ns.startswith(PREFIX):
            continue
        for pid in run("ip", "netns", "pids", ns, check=False).stdout.split():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                pass
    return total


def cleanup_stale() -> list[str]:
    """Remove every rh-* namespace (and its processes), link and hosts folder; returns what went."""
    removed = []
    for ns in namespaces():
        if ns.startswith(PREFIX):
            kill_namespace_processes(ns, grace_s=2.0)
            run("ip", "netns", "del", ns, check=False)
            removed.append(ns)
    links = run("ip", "-o", "link", "show", check=False).stdout
    for line in links.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name.startswith(PREFIX):
            run("ip", "link", "del", name, check=False)
            removed.append(name)
    if ETC_NETNS.is_dir():
        for folder in ETC_NETNS.glob(f"{PREFIX}*"):
            shutil.rmtree(folder, ignore_errors=True)
    return removed


class Network:
    """The bridge and the pods' namespaces; `close` removes everything it made."""

    def __init__(self) -> None:
        self.next_host = 10
        self.made: list[str] = []
        self.serial = 0

    def up(self) -> None:
        run("ip", "link", "add", BRIDGE, "type", "bridge")
        self.made.append(BRIDGE)
        run("ip", "addr", "add", f"{NODE_IP}/{SUBNET.prefixlen}", "dev", BRIDGE)
        run("ip", "link", "set", BRIDGE, "up")

    def allocate(self) -> str:
        address = SUBNET.network_address + self.next_host
        if address >= SUBNET.broadcast_address:
            raise NetError(f"no address left in {SUBNET}")
        self.next_host += 1  # never reused: a rescheduled pod gets a new address
        return str(address)

    def add_pod(self, ip: str, resolv_conf: str = "") -> str:
        """A namespace with one veth on the bridge at `ip`, loopback up, default route via the node."""
        self.serial += 1
        ns = f"{PREFIX}p{self.serial}"
        host_if, pod_if = f"{PREFIX}v{self.serial}", f"{PREFIX}c{self.serial}"
        run("ip", "netns", "add", ns)
        self.made.append(ns)
        run("ip", "link", "add", host_if, "type", "veth", "peer", "name", pod_if)
        run("ip", "link", "set", pod_if, "netns", ns)
        run("ip", "link", "set", host_if, "master", BRIDGE, "up")
        run("ip", "-n", ns, "link", "set", "lo", "up")
        run("ip", "-n", ns, "addr", "add", f"{ip}/{SUBNET.prefixlen}", "dev", pod_if)
        run("ip", "-n", ns, "link", "set", pod_if, "name", "eth0")
        run("ip", "-n", ns, "link", "set", "eth0", "up")
        run("ip", "-n", ns, "route", "add", "default", "via", NODE_IP)
        (ETC_NETNS / ns).mkdir(parents=True, exist_ok=True)
        self.write_hosts(ns, "")
        if resolv_conf:
            (ETC_NETNS / ns / "resolv.conf").write_text(resolv_conf)
        return ns

    def remove_pod(self, ns: str) -> None:
        kill_namespace_processes(ns)
        run("ip", "netns", "del", ns, check=False)  # the veth pair goes with it
        shutil.rmtree(ETC_NETNS / ns, ignore_errors=True)
        if ns in self.made:
            self.made.remove(ns)

    @staticmethod
    def write_hosts(ns: str, body: str) -> None:
        path = ETC_NETNS / ns / "hosts"
        text = "127.0.0.1 localhost\n::1 localhost\n" + body
        with open(path, "a+") as out:  # in place: the bind mount keeps the inode
            out.seek(0)
            if out.read() == text:
                return
            out.seek(0)
            out.truncate()
            out.write(text)

    def close(self) -> None:
        for ns in [m for m in self.made if m != BRIDGE]:
            self.remove_pod(ns)
        if BRIDGE in self.made:
            run("ip", "link", "del", BRIDGE, check=False)
            self.made.remove(BRIDGE)
