"""Where simulated search sessions get their results: the live gateway, or BM25 in-process.

Both answer `await ranker.search(text, user_id, k) -> SearchResults` and are async context
managers, so the replay loop does not care which one runs.
"""
from __future__ import annotations

import asyncio
import uuid
from typing import Any, Protocol

import aiohttp

from app.search_sessions import SearchResults
from models.data.homedepot import SearchData
from models.errors import GatewayUnavailable
from models.lexical import BM25Index


class Ranker(Protocol):
    async def __aenter__(self) -> "Ranker": ...
    async def __aexit__(self, *exc: object) -> None: ...
    async def search(self, text: str, user_id: str, k: int) -> SearchResults: ...


class LocalRanker:
    """BM25 over the catalog titles: sessions without a running gateway (results never personalised)."""

    VERSION = "bm25-local"

    def __init__(self, data: SearchData) -> None:
        self.index = BM25Index.build(data.items, data.titles)

    async def __aenter__(self) -> "LocalRanker":
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def search(self, text: str, user_id: str, k: int) -> SearchResults:
        items = [item for item, _ in self.index.search(text, k)]
        return SearchResults(items, uuid.uuid4().hex, self.VERSION)


class GatewayRanker:
    """`GET {base_url}/v1/search?q=&user_id=&k=` on a running gateway."""

    def __init__(self, base_url: str, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.url = f"{self.base_url}/v1/search"
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._client: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "GatewayRanker":
        """Open the client and check the gateway answers `/healthz`."""
        self._client = aiohttp.ClientSession(timeout=self.timeout)
        try:
            await self._get_json(f"{self.base_url}/healthz", {})
        except GatewayUnavailable:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def search(self, text: str, user_id: str, k: int) -> SearchResults:
        payload = await self._get_json(self.url, {"q": text, "user_id": user_id, "k": str(k)})
        try:
            items = [str(entry["item_id"]) for entry in payload["items"]]
            return SearchResults(items, str(payload["request_id"]), payload.get("model_version"))
        except (KeyError, TypeError) as exc:
            raise GatewayUnavailable(f"{self.url} answered without items/request_id ({exc!r})") from None

    async def _get_json(self, url: str, params: dict[str, str]) -> Any:
        assert self._client is not None, "use `async with GatewayRanker(...)`"
        try:
            async with self._client.get(url, params=params) as response:
                if response.status != 200:
                    body = (await response.text())[:200]
                    raise GatewayUnavailable(f"{url} answered HTTP {response.status}: {body}")
                return await response.json()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise GatewayUnavailable(
                f"cannot reach the gateway at {url} ({type(exc).__name__}: {exc or 'timed out'}); "
                "start it with `streamrank gateway`, pass --gateway URL, or use --ranker local"
            ) from None
