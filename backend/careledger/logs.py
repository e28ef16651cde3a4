"""Structured JSON logs: one object per line; callers pass fields, never PHI or keys.

What may be logged: routes (templates, not paths with ids), statuses, timings, counts,
transaction hashes, member addresses and key fingerprints. What may not: FHIR content,
patient references, salts, keys, signatures, request bodies.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__  # the type only: messages may quote data
        return json.dumps(entry, default=str)


def configure(level: str = "INFO") -> None:
    """Send careledger's logs to stderr as JSON lines (idempotent)."""
    logger = logging.getLogger("careledger")
    if any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
