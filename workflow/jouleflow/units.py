"""Durations with units on the command line and in configs: "5s", "250ms", "1.5min", "2h", "100us".

A bare number is refused on purpose: "50" could mean 50 ms (an ITL deadline) or 50 s (a batch
latency), and silently guessing would put a recommendation off by a factor of a thousand. Only an
option documented as taking plain seconds passes `bare_unit="s"`.
"""

from __future__ import annotations

import math
import re

# Unit spellings → seconds. Longest spellings first is not needed: the regex takes the whole suffix.
_UNIT_SECONDS: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,  # Greek mu as well as the micro sign
    "ms": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "mins": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hrs": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
}

_DURATION_RE = re.compile(r"^\s*([+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-zµμ]+)?\s*$")


class DurationError(ValueError):
    """A duration string that cannot be parsed. The message quotes the offending value."""


def parse_duration(text: str, *, what: str = "duration", bare_unit: str | None = None) -> float:
    """Parse one duration such as "250ms" or "1.5min" into seconds (a non-negative float).

    `what` names the option or key in the error message, e.g. "--latency-target". `bare_unit`
    is the unit of a number written without one; None (the default) refuses such a number.
    """
    if not isinstance(text, str):
        raise DurationError(f"{what}: expected a duration string such as '5s' or '250ms', got {text!r}")
    match = _DURATION_RE.match(text)
    if match is not None and match.group(2) is None and bare_unit is not None:
        return parse_duration(match.group(1) + bare_unit, what=what)
    if match is None or match.group(2) is None:
        if re.fullmatch(r"\s*[+-]?[\d.eE+-]+\s*", text):
            raise DurationError(
                f"{what}: {text!r} has no unit; write e.g. '{text.strip()}s' or '{text.strip()}ms'"
            )
        raise DurationError(
            f"{what}: {text!r} is not a duration (expected e.g. '5s', '250ms', '1.5min', '2h')"
        )
    number, unit = match.groups()
    scale = _UNIT_SECONDS.get(unit) or _UNIT_SECONDS.get(unit.lower())
    if scale is None:
        known = ", ".join(sorted({"ns", "us", "ms", "s", "min", "h"}))
        raise DurationError(f"{what}: {text!r} has an unknown unit {unit!r} (known: {known})")
    seconds = float(number) * scale
    if not math.isfinite(seconds):
        raise DurationError(f"{what}: {text!r} is not a finite duration")
    return seconds


def parse_duration_list(text: str, *, what: str = "durations") -> list[float]:
    """Parse a comma-separated list such as "50ms,100ms,250ms" into seconds, in the order given."""
    if not isinstance(text, str) or not text.strip():
        raise DurationError(f"{what}: expected a comma-separated list of durations, got {text!r}")
    items = [item.strip() for item in text.split(",")]
    if any(item == "" for item in items):
        raise DurationError(f"{what}: {text!r} has an empty entry")
    return [parse_duration(item, what=f"{what} entry") for item in items]


def format_duration(seconds: float) -> str:
    """Render seconds with a readable unit (for messages and labels): 0.05 → '50 ms', 3.63 → '3.63 s'."""
    if seconds != seconds:  # NaN
        return "nan"
    magnitude = abs(seconds)
    if magnitude >= 3600:
        return f"{seconds / 3600:.3g} h"
    if magnitude >= 60:
        return f"{seconds / 60:.3g} min"
    if magnitude >= 1 or magnitude == 0:
        return f"{seconds:.3g} s"
    if magnitude >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} µs"


def iso_utc(epoch_s: float | None) -> str | None:
    """Epoch seconds → ISO 8601 UTC to the second (2026-11-20T12:33:01Z); None stays None."""
    if epoch_s is None:
        return None
    from datetime import datetime, timezone

    return (
        datetime.fromtimestamp(float(epoch_s), tz=timezone.utc)
        .isoformat(timespec="seconds")
        .replace("+00:00", "Z")
    )
