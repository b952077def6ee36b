"""Fan out over the pods behind a headless Service.

The chart gives the driver one rollout URL, `http://<release>-rollout.<ns>.svc:30000`, for a
headless Service: its DNS name resolves to the address of every ready pod. A keep-alive HTTP
client would stick to the first address; `expand_endpoints` turns such a URL into one URL per
pod, so the balancer spreads requests over all of them. Call it at start and after failures
(pods come and go).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

Resolver = Callable[..., list]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def expand_endpoints(urls: list[str], resolve: Resolver | None = None) -> list[str]:
    """One http URL per resolved address, in resolver order, duplicates removed.

    IP literals, localhost, https URLs (certificates name the host) and names that do not resolve
    are kept as they are: a dead name is the client's to count as an endpoint failure.
    """
    resolve = resolve or socket.getaddrinfo
    expanded: list[str] = []
    for url in urls:
        parts = urlsplit(url)
        host = parts.hostname or ""
        # localhost stays one endpoint: a server bound to 127.0.0.1 does not answer on ::1
        if parts.scheme != "http" or not host or _is_ip(host) or host == "localhost":
            candidates = [url]
        else:
            port = parts.port or 80
            try:
                infos = resolve(host, port, type=socket.SOCK_STREAM)
            except OSError:
                infos = []
            addresses = list(dict.fromkeys(info[4][0] for info in infos))
            candidates = [
                urlunsplit(parts._replace(netloc=f"[{address}]:{port}" if ":" in address else f"{address}:{port}"))
                for address in addresses
            ] or [url]
        expanded.extend(candidate for candidate in candidates if candidate not in expanded)
    return expanded
