"""Fan out over the pods behind a headless Service.

The chart gives the driver one URL per service, e.g. `http://<release>-rollout.<ns>.svc:30000`,
for a headless Service: its DNS name resolves to the address of every ready pod. A keep-alive
HTTP client would stick to the first address; `expand_endpoints` turns such a URL into one URL per
pod, so the clients spread requests over all of them. Pods come and go (a rescheduled pod has a
new address; a chart upgrade replaces them all), so `EndpointSet` resolves again every
`refresh_s` and soon after a failure; `videop2r.http.pool.EndpointPool` re-resolves through it and
`reconcile`s its endpoint list with each answer.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

log = logging.getLogger(__name__)

Resolver = Callable[..., list]
E = TypeVar("E")


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


class EndpointSet:
    """The configured URLs expanded to one per pod, resolved again when due.

    Due = `refresh_s` after the last resolution, or `min_interval_s` after `invalidate()` (a
    failed request: the pod may be gone). A resolution that finds nothing keeps the configured
    URL (see `expand_endpoints`), so the set is never empty while URLs are configured.
    """

    def __init__(self, urls: list[str], *, refresh_s: float = 30.0, min_interval_s: float = 1.0,
                 resolve: Resolver | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.configured = [url.rstrip("/") for url in urls]
        self.refresh_s = refresh_s
        self.min_interval_s = min_interval_s
        self._resolve = resolve
        self._clock = clock
        self._urls: list[str] = []
        self._resolved_at: float | None = None
        self._invalidated = False
        self.resolutions = 0

    def due(self) -> bool:
        if not self.configured:
            return False
        if self._resolved_at is None:
            return True
        age = self._clock() - self._resolved_at
        return age >= self.refresh_s or (self._invalidated and age >= self.min_interval_s)

    def refresh(self) -> list[str]:
        """Resolve now (blocking DNS); returns the new list."""
        urls = expand_endpoints(self.configured, self._resolve)
        if self._urls and urls != self._urls:
            log.info("endpoints of %s now %s (were %s)", ", ".join(self.configured), urls, self._urls)
        self._urls, self._resolved_at, self._invalidated = urls, self._clock(), False
        self.resolutions += 1
        return list(urls)

    def current(self) -> list[str]:
        """The resolved URLs, resolving first when due."""
        return self.refresh() if self.due() else list(self._urls)

    async def acurrent(self) -> list[str]:
        """`current()` for an event loop: the DNS lookup runs in a thread."""
        return await asyncio.to_thread(self.refresh) if self.due() else list(self._urls)

    def invalidate(self) -> None:
        """A request to one of the URLs failed: resolve again soon."""
        self._invalidated = True


def reconcile(endpoints: list[E], urls: list[str], make: Callable[[str], E],
              url_of: Callable[[E], str] = lambda e: e.url, busy: Callable[[E], bool] = lambda e: e.in_flight > 0,
              ) -> tuple[list[E], list[str], list[str]]:
    """The endpoint list for `urls`: existing objects kept (with their state), new ones made; an
    endpoint no longer resolved is dropped once nothing is in flight on it. Returns (list, added, dropped)."""
    by_url = {url_of(endpoint): endpoint for endpoint in endpoints}
    result = [by_url.get(url) or make(url) for url in urls]
    added = [url for url in urls if url not in by_url]
    dropped = []
    for endpoint in endpoints:
        url = url_of(endpoint)
        if url in urls:
            continue
        if busy(endpoint):
            result.append(endpoint)  # a request is still on it: drop it at a later refresh
        else:
            dropped.append(url)
    return result, added, dropped
