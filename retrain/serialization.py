"""JSON text of what the code hands around: records, dates, numpy scalars."""

from __future__ import annotations

from typing import Any


def json_default(value: Any) -> Any:
    """``json.dumps(..., default=json_default)``: records as their JSON form (``to_dict()``),
    dates as ISO text, numpy scalars as numbers, anything else as its text."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return str(value)
