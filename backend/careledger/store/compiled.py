"""Statements compiled once by SQLAlchemy and run on the driver's own connection.

For the few statements on a hot path (the group commit's writes, ingest's insert of a
Bundle's records): SQLAlchemy composes the SQL and knows each type's conversion, the driver
runs it without SQLAlchemy's per-execution machinery.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import psycopg
from sqlalchemy import Insert, LargeBinary, Table, bindparam, insert
from sqlalchemy.sql.schema import ScalarElementColumnDefault

INTEGRITY_ERRORS = (sqlite3.IntegrityError, psycopg.IntegrityError)
"""The drivers' own constraint violations (SQLAlchemy does not wrap what they raise here)."""

OPERATIONAL_ERRORS = (sqlite3.OperationalError, psycopg.OperationalError)
"""The drivers' own "database unavailable" errors."""


class Compiled:
    """A statement as the driver takes it, and how to turn column values into its parameters."""

    def __init__(self, statement: Any, dialect: Any, defaults: dict[str, Any] | None = None) -> None:
        compiled = statement.compile(dialect=dialect)
        # A parameter left out takes the statement's own value (a literal such as LIMIT 1),
        # else the column's default, else NULL.
        self.defaults = {name: bind.value for name, bind in compiled.binds.items() if bind.value is not None}
        self.defaults |= defaults or {}
        self.sql = str(compiled)
        self.positional = bool(dialect.positional)
        self.names: list[str] = list(compiled.positiontup or []) if self.positional else list(compiled.binds)
        types = {name: bind.type for name, bind in compiled.binds.items()}
        self.processors = {
            name: processor
            for name in self.names
            # the dialect's own implementation of the type: SQLite's DATETIME writes the text
            # SQLAlchemy reads back and orders by (the generic type has no processor at all)
            if (processor := types[name].dialect_impl(dialect).bind_processor(dialect)) is not None
            # sqlite3 takes bytes as they are; SQLAlchemy's processor only wraps them
            and not (dialect.name == "sqlite" and isinstance(types[name], LargeBinary))
        }

        # params() runs once per row of a hot statement: the names' defaults and converters by position
        self._fields = [(name, self.defaults.get(name)) for name in self.names]
        self._converted = [
            (n, self.processors[name]) for n, name in enumerate(self.names) if name in self.processors
        ]

    def params(self, values: dict[str, Any]) -> Any:
        given = [values.get(name, default) for name, default in self._fields]
        for n, processor in self._converted:
            given[n] = processor(given[n])
        return tuple(given) if self.positional else dict(zip(self.names, given, strict=True))


def every_column_insert(table: Table) -> Insert:
    """An INSERT binding every column but the key, by its name: one statement whatever the
    row leaves out (what it leaves out takes `insert_defaults`, else NULL)."""
    return insert(table).values({c.name: bindparam(c.name) for c in table.columns if not c.primary_key})


def insert_defaults(table: Table) -> dict[str, Any]:
    """The column defaults a compiled INSERT of every column must fill in itself (it binds
    every column, so SQLAlchemy's own defaults would not apply)."""
    return {c.name: c.default.arg for c in table.columns if isinstance(c.default, ScalarElementColumnDefault)}
