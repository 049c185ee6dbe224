"""JSON every reader accepts: NaN and ±Infinity, which Python's `json` writes by default and most parsers
refuse, become null; numpy scalars become plain numbers. Every JSON file vidclass writes goes through here.
"""
from __future__ import annotations

import json
import math
from typing import Any


def clean(obj: Any) -> Any:
    """`obj` with every non-finite float replaced by None (recursively through dicts, lists and tuples)."""
    if isinstance(obj, dict):
        return {k: clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", None) == 0:
        obj = obj.item()  # numpy scalar
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """`json.dumps` that cannot emit NaN or Infinity."""
    return json.dumps(clean(obj), allow_nan=False, **kwargs)
