"""Counting against a limit per fixed time window, atomically, in the shared cache (rate limits, sign-ins).

A count that is read, compared and written back lets through every request that read it before the first
write. Here a spend is one atomic increment of the window's counter (Redis INCRBY; on the database cache
an increment under a row lock, core/cache.py), so concurrent requests each see a different total. A spend
whose total passes the limit gives its amount back and is refused whole: no more than the limit is ever
granted in a window, however many requests arrive at once. (While a refused spend is still counted, a
small one that would fit may be refused too; never the reverse.)

Windows are fixed periods of the clock, each key's shifted by an offset drawn from the key so that not
every count starts again at the same second. The window's start is part of the counter's name and the
counter expires shortly after the window ends: a count never outlives its window, and a counter without
an expiry (Redis makes one when an increment meets a counter deleted or expired a moment before) is never
read after its window.
"""

from __future__ import annotations

import contextlib
import math
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from django.core.cache import cache

# The clock the windows are cut from (tests stop it, so that no test straddles the end of a window).
clock: Callable[[], float] = time.time
# A counter outlives its window by this much, so a process whose clock runs a little late still finds it.
EXPIRY_GRACE_SECONDS = 60
# A counter must exist before it is incremented: tries of "create it if missing, then increment".
INCREMENT_TRIES = 3


@dataclass(frozen=True)
class RateSpend:
    """One spend's outcome: granted or not, what is left of the limit in this window, when the window ends."""

    granted: bool
    left: int
    limit: int
    resets_in: int  # whole seconds until the window ends and the count starts again


def rate_limit_spend(*, key: str, amount: int, limit: int, period: int) -> RateSpend:
    """Spend `amount` of `limit` in the current `period`-second window of `key`: all of it, or none if over."""
    if amount < 1:
        raise ValueError(f"A spend is at least 1, not {amount}.")
    counter, resets_in = _window(key, period)
    total = _increment(counter, amount, timeout=resets_in + EXPIRY_GRACE_SECONDS)
    if total <= limit:
        return RateSpend(granted=True, left=limit - total, limit=limit, resets_in=resets_in)
    with contextlib.suppress(ValueError):  # cleared meanwhile: nothing left to give back
        cache.decr(counter, amount)
    return RateSpend(granted=False, left=max(0, limit - (total - amount)), limit=limit, resets_in=resets_in)


def rate_limit_clear(*, key: str, period: int) -> None:
    """Forget what `key` has spent in the current window."""
    counter, _ = _window(key, period)
    cache.delete(counter)


def _window(key: str, period: int) -> tuple[str, int]:
    """The current window's counter name, and the whole seconds until that window ends."""
    offset = zlib.crc32(key.encode()) % period
    now = clock() - offset
    start = math.floor(now / period) * period
    return f"{key}:{start + offset}", max(1, math.ceil(start + period - now))


def _increment(counter: str, amount: int, *, timeout: int) -> int:
    """The counter's total after adding `amount`; a missing counter is created at 0 first (one creator wins)."""
    for _ in range(INCREMENT_TRIES - 1):
        try:
            return cache.incr(counter, amount)
        except ValueError:  # not there yet (or expired, or cleared): create it, then increment
            cache.add(counter, 0, timeout=timeout)
    return cache.incr(counter, amount)
