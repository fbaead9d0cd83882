"""Failed sign-ins slow down guessing (issue 17): per account name and per address, the same
answer whether or not the account exists, doubling blocks with a ceiling, forgotten after a
success or the window, bounded memory."""

from __future__ import annotations

import pytest

from helixserve.errors import TooManyAttempts
from helixserve.serving import throttle
from helixserve.serving.throttle import Throttle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def blocked_for(guard: Throttle, name: str, address: str | None) -> int | None:
    """``Retry-After`` if ``name`` from ``address`` is blocked now, else ``None``."""
    try:
        guard.check(name, address)
    except TooManyAttempts as err:
        assert str(err) == f"too many failed sign-ins; wait {err.retry_after} s and try again."
        return err.retry_after
    return None


def test_an_account_is_blocked_after_five_failures_for_doubling_times() -> None:
    clock = Clock()
    guard = Throttle(clock)
    for _ in range(throttle.FREE_FAILURES - 1):
        guard.failed("Ana", "10.0.0.1")
        assert blocked_for(guard, "ana", "10.0.0.2") is None
    waits = []
    for _ in range(4):
        guard.failed("ana", "10.0.0.1")
        waits.append(blocked_for(guard, "ANA", "10.0.0.9"))  # any address, any case
    assert waits == [2, 4, 8, 16]
    clock.now += 16
    assert blocked_for(guard, "ana", None) is None
    guard.succeeded("ana")
    guard.failed("ana", None)
    assert blocked_for(guard, "ana", None) is None


def test_the_block_has_a_ceiling_and_old_failures_are_forgotten() -> None:
    clock = Clock()
    guard = Throttle(clock)
    for _ in range(40):
        guard.failed("bo", None)
    assert blocked_for(guard, "bo", None) == throttle.MAX_BLOCK_S
    clock.now += throttle.WINDOW_S + throttle.MAX_BLOCK_S
    guard.failed("bo", None)
    assert blocked_for(guard, "bo", None) is None


@pytest.mark.parametrize("exists", [True, False])
def test_one_address_guessing_many_names_is_blocked(exists: bool) -> None:
    """Names that exist or not: the throttle never looks, so the answers cannot differ."""
    guard = Throttle(Clock())
    names = [f"{'user' if exists else 'ghost'}{i}" for i in range(throttle.ADDRESS_FREE_FAILURES)]
    for name in names:
        guard.failed(name, "10.0.0.7")
    assert blocked_for(guard, "someone-else", "10.0.0.7") == 2
    assert blocked_for(guard, "someone-else", "10.0.0.8") is None


def test_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(throttle, "MAX_TRACKED", 50)
    guard = Throttle(Clock())
    for i in range(200):
        guard.failed(f"made-up-{i}", f"10.1.{i // 250}.{i % 250}")
    assert len(guard._counts) == 50
