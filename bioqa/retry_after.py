"""The wait an HTTP server asks for before a retry, read once for every client bioqa has (LiteLLM, MediaWiki)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any


def retry_after_seconds(headers: Mapping[str, Any]) -> float | None:
    """Seconds from ``retry-after-ms``, or ``Retry-After`` in seconds or as an HTTP date (a past date: 0); ``None``
    when neither is there or the value is not a finite, non-negative number or a date. Header names are looked up
    in lower case (``httpx.Headers`` matches any case)."""
    milliseconds = _number(headers.get("retry-after-ms"))
    if milliseconds is not None:
        return milliseconds / 1000
    value = headers.get("retry-after")
    seconds = _number(value)
    if seconds is not None or not value:
        return seconds
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds())
    except (TypeError, ValueError):
        return None


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number >= 0 else None
