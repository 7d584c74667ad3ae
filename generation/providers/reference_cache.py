"""A bounded, least-recently-used cache of reference images, by content hash.

Marketers send the same product photos and logos over and over. Two things repeat
and cost time: normalising an uploaded image (decode, orientation, colour profile,
re-encode: tens of milliseconds for a photo) and fetching a reference URL before a
Gemini call (a round trip to somebody else's server, which may be slow or down).

- ``normalised(raw, make)``: the normalised form of these exact bytes, keyed by their
  SHA-256, so the same photo under any name or field is normalised once.
- ``fetched(url)`` / ``remember_fetch(url, data, mime)``: a URL's bytes for a short
  while (``BRENIA_REFERENCE_CACHE_SECONDS``): what is behind a URL may change, so a
  URL is trusted only briefly; the bytes themselves are stored once per content hash.

Both live in this process's memory (cachetools), bounded in bytes
(``BRENIA_REFERENCE_CACHE_MB``): the least recently used images go first. Per process
on purpose: the saving is a local decode or fetch, and sharing it through Redis would
cost a round trip of the same size. Hits and misses are counted for /metrics.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import Any

from cachetools import LRUCache, TTLCache
from django.conf import settings

from brenia.metrics import reference_cache_lookup


def _size(entry: tuple[bytes, str]) -> int:
    return len(entry[0]) + len(entry[1]) + 64


class _Store:
    """Content by hash (bounded in bytes), and which hash a URL held recently."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self, timer: Callable[[], float] = time.monotonic) -> None:
        limit = max(1, int(settings.BRENIA_REFERENCE_CACHE_MB * 1024 * 1024))
        self.blobs: LRUCache[str, tuple[bytes, str]] = LRUCache(maxsize=limit, getsizeof=_size)
        self.normal: LRUCache[str, str] = LRUCache(maxsize=4096)
        self.urls: TTLCache[str, str] = TTLCache(
            maxsize=4096, ttl=max(0.001, settings.BRENIA_REFERENCE_CACHE_SECONDS), timer=timer)

    def get_blob(self, digest: str | None) -> tuple[bytes, str] | None:
        if digest is None:
            return None
        with self.lock:
            return self.blobs.get(digest)

    def put_blob(self, data: bytes, mime: str) -> str | None:
        """Store ``data``; its digest, or None if it is larger than the whole cache."""
        digest = hashlib.sha256(data).hexdigest()
        entry = (data, mime)
        with self.lock:
            if _size(entry) > self.blobs.maxsize:
                return None
            self.blobs[digest] = entry
        return digest


_store = _Store()


def reference_cache_reset(timer: Callable[[], float] = time.monotonic) -> None:
    """Empty the cache and read its settings again; ``timer`` is the clock URL entries
    expire by (tests turn it by hand)."""
    with _store.lock:
        _store.reset(timer)


def normalised(raw: bytes, make: Callable[[bytes], tuple[bytes, str]]) -> tuple[bytes, str]:
    """``make(raw)`` (normalised bytes and their media type), computed once per content.

    ``make`` may raise (an image Brenia refuses): nothing is cached then, and the error
    passes to the caller as if there were no cache.
    """
    key = hashlib.sha256(raw).hexdigest()
    with _store.lock:
        digest = _store.normal.get(key)
    hit = _store.get_blob(digest)
    if hit is not None:
        reference_cache_lookup(kind="normalised", hit=True)
        return hit
    reference_cache_lookup(kind="normalised", hit=False)
    data, mime = make(raw)
    stored = _store.put_blob(data, mime)
    if stored is not None:
        with _store.lock:
            _store.normal[key] = stored
    return data, mime


def fetched(url: str) -> tuple[bytes, str] | None:
    """The bytes and media type fetched from ``url`` a moment ago, if still held."""
    with _store.lock:
        digest = _store.urls.get(url)
    hit = _store.get_blob(digest)
    reference_cache_lookup(kind="fetched", hit=hit is not None)
    return hit


def remember_fetch(url: str, data: bytes, mime: str) -> None:
    digest = _store.put_blob(data, mime)
    if digest is not None:
        with _store.lock:
            _store.urls[url] = digest


def stats() -> dict[str, Any]:
    """What the cache holds now: for the benches and the admin's curiosity."""
    with _store.lock:
        return {"images": len(_store.blobs), "bytes": int(_store.blobs.currsize),
                "urls": len(_store.urls), "limit_bytes": int(_store.blobs.maxsize)}
