"""Durations as people write and read them: `45m`, `1h30m`, `90s` in; `2 min 05 s` out."""

from __future__ import annotations

import math
import re

DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*h)?\s*(?:(\d+(?:\.\d+)?)\s*m(?:in)?)?\s*(?:(\d+(?:\.\d+)?)\s*s)?\s*$")


def seconds(value) -> float | None:
    """Seconds from a number of seconds or text such as `45m`, `1h30m`, `90s`, `2.5h`; None when it is
    none of these, or not a finite number > 0."""
    out = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        out = float(value)
    elif isinstance(value, str):
        text = value.strip()
        match = DURATION.match(text) if text else None
        if match and any(match.groups()):
            h, m, s = (float(g) if g else 0.0 for g in match.groups())
            out = h * 3600 + m * 60 + s
        else:
            try:
                out = float(text)
            except ValueError:
                out = None
    if out is None or not math.isfinite(out) or out <= 0:
        return None
    return out


def duration(seconds: float) -> str:
    """`42 s`, `2 min 05 s`, `1 h 03 min`."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def budget_text(seconds: float) -> str:
    """A budget as `--budget` takes it: `45m`, or `90s` where it is not whole minutes."""
    seconds = round(seconds)
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"
