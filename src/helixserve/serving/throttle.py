"""Slowing down password guessing: failed sign-ins counted per account name and per address.

Contract:
- :class:`Throttle` remembers failures in this process (a server with several worker processes
  allows each its own count: the limits below times the workers, still far from a brute force).
  :meth:`Throttle.check` raises :class:`~helixserve.errors.TooManyAttempts` (429, ``Retry-After``)
  while the name or the address is blocked, *before* the password is checked; the message is the
  same whether or not the account exists.
- :meth:`Throttle.failed` records a failure: after :data:`FREE_FAILURES` failures of one name
  within :data:`WINDOW_S`, that name is blocked for 2 s, doubling with each further failure up to
  :data:`MAX_BLOCK_S`; an address gets :data:`ADDRESS_FREE_FAILURES` (one person may mistype
  several accounts; one address guessing many accounts is blocked in the same way).
  :meth:`Throttle.succeeded` forgets the name's failures (not the address's).
- Names are compared case-folded; at most :data:`MAX_TRACKED` names and addresses are
  remembered (the oldest forgotten first), so a flood of made-up names cannot fill the memory.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from helixserve.errors import TooManyAttempts

FREE_FAILURES = 5
ADDRESS_FREE_FAILURES = 20
WINDOW_S = 900.0
MAX_BLOCK_S = 900.0
MAX_TRACKED = 10_000


@dataclass
class _Count:
    failures: list[float] = field(default_factory=list)
    blocked_until: float = 0.0


class Throttle:
    """See the module contract; ``clock`` is for tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._counts: OrderedDict[str, _Count] = OrderedDict()

    def check(self, name: str, address: str | None) -> None:
        now = self._clock()
        waits = [
            count.blocked_until - now
            for key in self._keys(name, address)
            if (count := self._counts.get(key)) is not None and count.blocked_until > now
        ]
        if waits:
            seconds = math.ceil(max(waits))
            raise TooManyAttempts(
                f"too many failed sign-ins; wait {seconds} s and try again.", retry_after=seconds
            )

    def failed(self, name: str, address: str | None) -> None:
        now = self._clock()
        for key in self._keys(name, address):
            free = ADDRESS_FREE_FAILURES if key.startswith("address:") else FREE_FAILURES
            count = self._counts.pop(key, None) or _Count()
            count.failures = [t for t in count.failures if now - t < WINDOW_S] + [now]
            over = len(count.failures) - free + 1
            if over > 0:
                count.blocked_until = now + min(MAX_BLOCK_S, 2.0**over)
            self._counts[key] = count
        while len(self._counts) > MAX_TRACKED:
            self._counts.popitem(last=False)

    def succeeded(self, name: str) -> None:
        self._counts.pop(f"name:{name.casefold()}", None)

    @staticmethod
    def _keys(name: str, address: str | None) -> list[str]:
        keys = [f"name:{name.casefold()}"]
        return keys + ([f"address:{address}"] if address else [])
