"""A TLS-terminating reverse proxy in front of Azurite that injects faults on chosen requests.

Off unless rules are given. Each :class:`FaultRule` matches request paths by regular expression
and answers some of them itself: with an HTTP status (503 ServerBusy "Egress is over the account
limit", as the Planetary Computer's storage throttles (microsoft/PlanetaryComputer#191); 429 with Retry-After,
403 AuthenticationFailed as for an expired token), a delay, or a dropped connection. Everything
else is forwarded unchanged to Azurite. Seeded, so a run's faults are reproducible.
"""

from __future__ import annotations

import asyncio
import random
import re
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from conus404.core.processes import free_loopback_port
from conus404.emulator.tls import TlsFiles

_AZURE_ERRORS = {
    403: ("AuthenticationFailed", "Server failed to authenticate the request. Signature not valid in the specified time frame."),
    429: ("TooManyRequests", "Too many requests."),
    500: ("InternalError", "The server encountered an internal error."),
    503: ("ServerBusy", "Egress is over the account limit."),
}


@dataclass
class FaultRule:
    path_pattern: str  # regular expression searched in the request path
    status: int | None = None  # answer with this status instead of forwarding
    times: int | None = None  # affect only the first N matching requests (None: no limit)
    probability: float = 1.0  # share of matching requests affected
    delay_s: float = 0.0  # wait before answering / forwarding
    drop: bool = False  # close the connection without an answer
    truncate: bool = False  # forward, but cut the body in half and close (a truncated download)
    retry_after_s: int | None = None
    for_seconds: float | None = None  # affect matching requests only this long after the first one (a throttle)
    hits: int = 0

    def __post_init__(self) -> None:
        self._regex = re.compile(self.path_pattern)
        self._first_hit: float | None = None

    def applies(self, path: str, rng: random.Random) -> bool:
        if not self._regex.search(path):
            return False
        if self.times is not None and self.hits >= self.times:
            return False
        if self.for_seconds is not None:
            now = time.monotonic()
            self._first_hit = now if self._first_hit is None else self._first_hit
            if now - self._first_hit > self.for_seconds:
                return False
        if rng.random() >= self.probability:
            return False
        self.hits += 1
        return True


@dataclass
class FaultProxy:
    tls: TlsFiles
    upstream_port: int
    rules: list[FaultRule] = field(default_factory=list)
    seed: int = 0
    port: int = 0
    counts: Counter = field(default_factory=Counter)  # "forwarded", "injected", "bytes" ...
    paths: Counter = field(default_factory=Counter)  # forwarded requests per path (GETs of each chunk)
    bandwidth_bytes_per_s: float | None = None  # model one shared network link of this capacity
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: object = None

    def start(self) -> FaultProxy:
        self.port = self.port or free_loopback_port()
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, args=(ready,), name="fault-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(30):
            raise RuntimeError("the fault proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        future.result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        self._loop = None

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._startup())
        ready.set()
        self._loop.run_forever()

    async def _startup(self) -> None:
        import aiohttp
        from aiohttp import web

        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ctx.load_cert_chain(self.tls.server_cert, self.tls.server_key)
        client_ctx = ssl.create_default_context(cafile=str(self.tls.ca_bundle))
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=client_ctx), auto_decompress=False
        )
        app = web.Application(client_max_size=1024**3)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)  # do not wait for delayed answers
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=server_ctx).start()

    async def _shutdown(self) -> None:
        await self._runner.cleanup()
        await self._session.close()
        # Requests still held by a long delay are released here, not left pending in a closed loop.
        held = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in held:
            task.cancel()
        await asyncio.gather(*held, return_exceptions=True)

    def _pick(self, path: str) -> FaultRule | None:
        with self._lock:
            for rule in self.rules:
                if rule.applies(path, self._rng):
                    return rule
        return None

    async def _handle(self, request):
        from aiohttp import web

        rule = self._pick(request.path)
        if rule is not None:
            self.counts["injected"] += 1
            if rule.delay_s:
                await asyncio.sleep(rule.delay_s)
            if rule.drop:
                request.transport.close()
                return web.Response(status=500)
            if rule.truncate:
                return await self._forward(request, truncate=True)
            if rule.status is not None:
                code, message = _AZURE_ERRORS.get(rule.status, ("InjectedFault", "Injected fault."))
                headers = {"x-ms-error-code": code, "Content-Type": "application/xml"}
                if rule.retry_after_s is not None:
                    headers["Retry-After"] = str(rule.retry_after_s)
                body = f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code><Message>{message}</Message></Error>'
                return web.Response(status=rule.status, text=body, headers=headers)
        self.counts["forwarded"] += 1
        if request.method == "GET":
            self.paths[request.path] += 1
        return await self._forward(request)

    async def _through_link(self, size: int) -> None:
        """Hold an answer until a link of ``bandwidth_bytes_per_s`` shared by all requests has carried it."""
        if not self.bandwidth_bytes_per_s:
            return
        now = asyncio.get_running_loop().time()
        self._link_free_at = max(now, getattr(self, "_link_free_at", 0.0)) + size / self.bandwidth_bytes_per_s
        await asyncio.sleep(self._link_free_at - now)

    async def _forward(self, request, truncate: bool = False):
        from aiohttp import web

        url = f"https://127.0.0.1:{self.upstream_port}{request.rel_url}"
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        data = await request.read()
        async with self._session.request(request.method, url, headers=headers, data=data or None) as upstream:
            body = await upstream.read()
            self.counts["bytes"] += len(body)
            await self._through_link(len(body))
            out_headers = {
                k: v for k, v in upstream.headers.items()
                if k.lower() not in ("content-length", "transfer-encoding", "connection")
            }
            if not truncate or len(body) < 2:
                return web.Response(status=upstream.status, body=body, headers=out_headers)
            response = web.StreamResponse(status=upstream.status, headers=out_headers)
            response.content_length = len(body)  # promise the whole body ...
            await response.prepare(request)
            await response.write(body[: len(body) // 2])  # ... deliver half, then hang up
            request.transport.close()
            return response
