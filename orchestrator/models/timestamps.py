"""The timestamp rule of run records: every timestamp a learner compares is aware, in UTC and
in a range where its arithmetic cannot overflow.

A record may come from outside (``Client.record_run``, ``orchestrator learn``), so its times
are normalised where it is validated: a naive time is taken as UTC (what telemetry without an
offset means in practice), an aware one is converted to UTC, and one outside
``EARLIEST``..``LATEST`` is refused. Without this a learner would compare naive and aware times
(``TypeError``) or fail converting year 1 to a POSIX time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
"""The first time a record may hold: the POSIX epoch."""
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
"""The first time a record may not hold: far enough for any run, far from ``datetime.max``."""
OUT_OF_RANGE = (
    f"timestamp out of range: records hold times from {EARLIEST:%Y-%m-%d} to "
    f"{LATEST:%Y-%m-%d} (UTC)"
)


def in_utc(value: datetime) -> datetime:
    """``value`` as an aware UTC time (naive: taken as UTC), or ``ValueError`` when it lies
    outside ``EARLIEST``..``LATEST``."""
    if value.utcoffset() is None:
        value = value.replace(tzinfo=UTC)
    try:
        value = value.astimezone(UTC)
    except OverflowError:  # an offset that moves it past year 1 or 9999
        raise ValueError(OUT_OF_RANGE) from None
    if not EARLIEST <= value < LATEST:
        raise ValueError(OUT_OF_RANGE)
    return value


UtcTimestamp = Annotated[datetime, AfterValidator(in_utc)]
"""A record's time, normalised by ``in_utc``."""
