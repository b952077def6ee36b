"""Cluster DNS on the node address: A records for Service names, NXDOMAIN for the rest.

Each pod's /etc/resolv.conf (bind-mounted by `ip netns exec` from /etc/netns/NS/resolv.conf) is
what the kubelet writes for ClusterFirst: this server, the search path `<ns>.svc.cluster.local
svc.cluster.local cluster.local`, ndots:5. Needed beside the hosts files because resolvers that
query DNS directly (gRPC's c-ares resolver, which Ray's GCS client uses) never read /etc/hosts.
UDP only, one question per query (RFC 1035 §4.1), answers with TTL 0 so clients re-resolve.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable

DOMAIN = "cluster.local"


def resolv_conf(nameserver: str, namespace: str) -> str:
    return (f"search {namespace}.svc.{DOMAIN} svc.{DOMAIN} {DOMAIN}\n"
            f"nameserver {nameserver}\noptions ndots:5\n")


def _name(packet: bytes, offset: int) -> tuple[str, int]:
    labels = []
    while True:
        length = packet[offset]
        if length == 0:
            return ".".join(labels).lower(), offset + 1
        if length & 0xC0:
            raise ValueError("compressed name in a question")
        labels.append(packet[offset + 1: offset + 1 + length].decode("ascii", "replace"))
        offset += 1 + length


def answer(packet: bytes, lookup: Callable[[str], list[str]]) -> bytes | None:
    """The response to one query packet; None for something that is not a standard query."""
    if len(packet) < 12:
        return None
    ident, flags, qdcount = struct.unpack("!HHH", packet[:6])
    if flags & 0x8000 or qdcount != 1:
        return None
    try:
        name, end = _name(packet, 12)
        qtype, qclass = struct.unpack("!HH", packet[end:end + 4])
    except (ValueError, IndexError, struct.error):
        return None
    question = packet[12:end + 4]
    addresses = lookup(name)
    records = b""
    if qtype == 1 and qclass == 1:
        for ip in addresses:
            records += struct.pack("!HHHIH", 0xC00C, 1, 1, 0, 4) + socket.inet_aton(ip)
    count = len(addresses) if qtype == 1 else 0
    # A known name without an AAAA answer is NOERROR/empty; an unknown name is NXDOMAIN.
    rcode = 0 if addresses else 3
    header = struct.pack("!HHHHHH", ident, 0x8400 | (flags & 0x0100) | rcode, 1, count, 0, 0)
    return header + question + records


class DNSServer:
    def __init__(self, address: str, lookup: Callable[[str], list[str]], port: int = 53) -> None:
        self.lookup = lookup
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, port))
        self.sock.settimeout(0.5)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, name="cluster-dns", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                packet, peer = self.sock.recvfrom(512)
            except (TimeoutError, OSError):
                continue
            reply = answer(packet, self.lookup)
            if reply is not None:
                try:
                    self.sock.sendto(reply, peer)
                except OSError:
                    pass

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=2)
        self.sock.close()
