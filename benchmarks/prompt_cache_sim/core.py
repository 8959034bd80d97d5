"""What both caches share: blocks, prefix keys, and the store of entries."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Block:
    """One cacheable unit of a prompt: ``content_hash`` is any string that differs when the
    content does, ``tokens`` its length in tokens."""

    content_hash: str
    tokens: int


@dataclass
class Entry:
    """A cached prefix: readable from ``available_at`` until ``expires_at``; ``ttl`` names
    the lifetime a read renews it by."""

    expires_at: float
    available_at: float
    ttl: str

    def live(self, now: float) -> bool:
        return self.available_at <= now < self.expires_at


class PrefixStore:
    """Entries by prefix key. A prefix written again before it expired keeps the earliest time
    it was readable (a copy is already there) and the latest expiry."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        self._last_now = float("-inf")

    def advance(self, now: float) -> None:
        """Move the store's time to ``now``, which must not go back."""
        # Entries are never pruned by time, so a clock going back would revive expired ones.
        if now < self._last_now:
            raise ValueError(f"now went back from {self._last_now} to {now}")
        self._last_now = now

    def live(self, key: str, now: float) -> Entry | None:
        """The entry of ``key`` if it is readable at ``now``."""
        entry = self.entries.get(key)
        return entry if entry is not None and entry.live(now) else None

    def write(self, key: str, now: float, available_at: float, ttl: str, ttl_s: float) -> None:
        """Store ``key`` at ``now`` for ``ttl_s`` seconds, readable from ``available_at``."""
        old = self.entries.get(key)
        new = Entry(now + ttl_s, available_at, ttl)
        if old is not None and now < old.expires_at:
            new.available_at = min(old.available_at, available_at)
            if old.expires_at > new.expires_at:
                new.expires_at, new.ttl = old.expires_at, old.ttl
        self.entries[key] = new


def prefix_keys(model: str, blocks: Sequence[Block]) -> list[str]:
    """The key of each prefix ``blocks[: i + 1]``: a hash chained over the blocks, so equal
    keys mean equal prefixes (and the same model)."""
    keys: list[str] = []
    digest = hashlib.sha256(model.encode()).hexdigest()
    for block in blocks:
        digest = hashlib.sha256(f"{digest}\0{block.content_hash}".encode()).hexdigest()
        keys.append(digest)
    return keys
