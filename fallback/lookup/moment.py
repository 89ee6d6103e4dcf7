"""What the lookup path remembers for a moment (`MomentMemo`): facts true enough for that
long, such as the answer of a miss that is the same for everyone but its `as_of`."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class MomentMemo(Generic[K, V]):
    """Values kept for at most `moment_s` (0: nothing is kept): everything goes at once when
    the moment is over, so it holds at most one moment's keys and costs no sweep."""

    def __init__(self, moment_s: float,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._moment = moment_s
        self._monotonic = monotonic
        self._values: dict[K, V] = {}
        self._since = monotonic()

    def get(self, key: K) -> V | None:
        if not self._values:
            return None
        if self._monotonic() - self._since >= self._moment:
            self._values.clear()
            return None
        return self._values.get(key)

    def put(self, key: K, value: V) -> None:
        if self._moment <= 0:
            return
        if not self._values:
            self._since = self._monotonic()
        self._values[key] = value
