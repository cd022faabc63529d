"""The one cache: a thread-safe LRU bounded by entry count and/or total size.

Every cache in the package is one of these (prepared images, probe results, saved
notebooks, /see contexts, model capabilities), so eviction and locking are written once.
A leaf module: stdlib only.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    """``max_items`` bounds the number of entries, ``max_size`` the sum of ``sizeof(key,
    value)`` (e.g. bytes); an entry bigger than ``max_size`` on its own is not stored."""

    def __init__(
        self,
        *,
        max_items: int | None = None,
        max_size: int | None = None,
        sizeof: Callable[[K, V], int] | None = None,
    ) -> None:
        if max_items is None and max_size is None:
            raise ValueError("an LRU needs a bound: max_items, max_size or both")
        if max_size is not None and sizeof is None:
            raise ValueError("max_size needs a sizeof function")
        self.max_items = max_items
        self.max_size = max_size
        self._sizeof = sizeof
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: K, default: V | None = None) -> V | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self.misses += 1
                return default
            self._items.move_to_end(key)
            self.hits += 1
            return item[0]

    def put(self, key: K, value: V) -> None:
        size = self._sizeof(key, value) if self._sizeof else 0
        if self.max_size is not None and size > self.max_size:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._size -= old[1]
            self._items[key] = (value, size)
            self._size += size
            self._evict()

    def pop(self, key: K) -> V | None:
        with self._lock:
            item = self._items.pop(key, None)
            if item is None:
                return None
            self._size -= item[1]
            return item[0]

    def _evict(self) -> None:
        while self._items and (
            (self.max_items is not None and len(self._items) > self.max_items)
            or (self.max_size is not None and self._size > self.max_size)
        ):
            _, (_, size) = self._items.popitem(last=False)
            self._size -= size

    @property
    def size(self) -> int:
        """The sum of the entries' sizes."""
        return self._size

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._size = 0
