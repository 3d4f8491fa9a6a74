"""A small client for Envoy's admin API, over TCP or a unix socket (IO).

The agent needs three admin calls: `GET /ready` (is Envoy LIVE?), `POST /healthcheck/fail` and
`POST /drain_listeners` (start a graceful drain). Every call is best effort with a short timeout: a
missing or dead admin is an answer (`None` / `False`), not an exception.
"""

from __future__ import annotations

from types import TracebackType

import aiohttp

from pilotfish.agent.options import Address, UnixAddress

REQUEST_TIMEOUT_S = 1.0


class AdminClient:
    """`async with AdminClient(address) as admin: await admin.ready_state()`."""

    def __init__(self, address: Address, timeout: float = REQUEST_TIMEOUT_S) -> None:
        self._address = address
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AdminClient:
        connector: aiohttp.BaseConnector
        if isinstance(self._address, UnixAddress):
            path = self._address.path
            # Envoy writes abstract socket names with a leading '@'; the kernel wants a NUL byte.
            connector = aiohttp.UnixConnector(path="\0" + path[1:] if self._address.is_abstract else path)
            self._base = "http://envoy-admin"
        else:
            connector = aiohttp.TCPConnector(force_close=True)
            self._base = f"http://{self._address}"
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(self, method: str, path: str) -> tuple[int, str] | None:
        """(status, body), or None when the admin cannot be reached."""
        assert self._session is not None, "use AdminClient as an async context manager"
        try:
            async with self._session.request(method, self._base + path) as response:
                return response.status, await response.text()
        except (TimeoutError, aiohttp.ClientError, OSError):
            return None

    async def ready_state(self) -> str | None:
        """Envoy's server state from `/ready` (`LIVE`, `PRE_INITIALIZING`, `DRAINING`...) or None."""
        answer = await self.request("GET", "/ready")
        return None if answer is None else answer[1].strip()

    async def post(self, path: str) -> bool:
        answer = await self.request("POST", path)
        return answer is not None and answer[0] == 200
