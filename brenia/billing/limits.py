"""Windows a plan's limits are counted in, and the per-key request rate.

Days and months begin at the user's own local midnight (``User.time_zone``), never
at UTC's and never on the anniversary of a first request: a cap "per day" resets
when the user's day does.
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.core.cache import cache


def day_window(zone: ZoneInfo, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the local day holding ``now``, as aware datetimes."""
    local = now.astimezone(zone)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    # Aware arithmetic in one zone is wall-clock: the next local midnight, even on a
    # summer-time day of 23 or 25 hours.
    return start, start + timedelta(days=1)


def month_window(zone: ZoneInfo, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the local calendar month holding ``now``."""
    local = now.astimezone(zone)
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (start + timedelta(days=32)).replace(day=1)
    return start, following


def seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, math.ceil((moment - now).total_seconds()))


def rate_check(*, client: str, per_minute: int, now: float | None = None) -> int | None:
    """Count one request from ``client`` in the current minute; the seconds until the
    window ends if it went over ``per_minute``, else None.

    A fixed one-minute window in the shared cache (Redis in scale-out, so every web
    process counts together; in-process memory embedded). ``incr`` is atomic in both.
    """
    now = time.time() if now is None else now
    window = int(now // 60)
    key = f"billing:rate:{client}:{window}"
    cache.add(key, 0, timeout=120)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr: this request opens the window
        cache.set(key, 1, timeout=120)
        count = 1
    if count > per_minute:
        return max(1, math.ceil((window + 1) * 60 - now))
    return None
