"""Peewee queries turned into SQL once per shape, then run with each call's values.

Building a query's SQL is most of what peewee costs on a read: bench.micro's cProfile put it
at about half of GetReport's and GetCohortDraft's servicer CPU, against ~10 µs for SQLite to
run the statement. A `CompiledQuery` builds its query once per database kind and per shape
(the length of each list argument, since `IN (...)` has one parameter per value) with marker
values, keeps the SQL, and from then on only swaps the markers for the call's values; rows
come back through the query's own cursor wrapper, so they are the model instances (joined
rows included), tuples or dicts the query would have returned.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import peewee

MAX_SHAPES = 256  # per compiled query; list lengths beyond a few are rare, least used go first


class _Marker(str):
    """A parameter placeholder: text no caller sends (NUL is refused at the interceptor).

    Its length is not 32, so UUIDField passes it through as it does any non-UUID text.
    """


def _adapt(value: Any) -> Any:
    # What UUIDField.db_value does; the other argument fields (text) take values as they are.
    return value.hex if isinstance(value, uuid.UUID) else value


# What a peewee cursor wrapper keeps about one cursor; the rest of its state is what it
# works out from the columns (names, converters, joined models), the same for every run of
# one SQL text. Working it out again was a sixth of GetReport's servicer time under cProfile;
# reused, bench.micro's median moved from ~440 to ~370 µs (noisy, interleaved runs).
_PER_CURSOR = frozenset({"cursor", "count", "index", "initialized", "populated", "row_cache"})


class _Template:
    def __init__(
        self, query: peewee.BaseQuery, sql: str, slots: list[int | None], params: list[Any]
    ) -> None:
        self.query = query
        self.sql = sql
        self.slots = slots  # per parameter: the index of the argument value, or None (constant)
        self.constants = params
        self.columns: dict[str, Any] | None = None  # the cursor wrapper's column state

    def rows(self, cursor: Any) -> Any:
        wrapper = self.query._get_cursor_wrapper(cursor)  # the query's own row conversion
        if cursor.description is None:  # not a SELECT: nothing to convert
            return wrapper
        if self.columns is None:
            wrapper.initialize()
            self.columns = {k: v for k, v in vars(wrapper).items() if k not in _PER_CURSOR}
        else:
            vars(wrapper).update(self.columns)
        wrapper.initialized = True
        return wrapper


def unconverted(marker: Any) -> peewee.Value:
    """An argument its field would convert (a boolean, a blob), handed to the driver as it is.

    For writes: sqlite3 and psycopg2 both take Python booleans and bytes themselves.
    """
    return peewee.Value(marker, converter=False)


class CompiledQuery:
    """`build(*args)` -> a peewee query; call with the same kinds of arguments to run it.

    An argument is one value or a list of values; every argument must reach the SQL as a
    parameter unchanged by its field (text, UUID, number and time columns; wrap others in
    `unconverted`), which is checked once per shape. Writes work too: pass every column
    value as an argument, since a field's default (a creation time) would be compiled in.
    """

    def __init__(self, database: peewee.Database, build: Callable[..., peewee.BaseQuery]):
        self._database = database
        self._build = build
        self._templates: OrderedDict[tuple[Any, ...], _Template] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, *args: Any) -> Any:
        """The rows of the query for these arguments (a peewee cursor wrapper)."""
        template, cursor = self._execute(args)
        return template.rows(cursor)

    def first(self, *args: Any) -> Any:
        """The first row, or None."""
        return next(iter(self(*args)), None)

    def raw(self, *args: Any) -> Any:
        """The driver's cursor: its rows are tuples, with no field conversion at all.

        For hot paths that map columns by hand (shared.columns reads the values that differ
        between drivers): peewee's per-row conversion was a fifth to a half of their time.
        """
        return self._execute(args)[1]

    def _execute(self, args: Sequence[Any]) -> tuple[_Template, Any]:
        target = self._database
        if isinstance(target, peewee.DatabaseProxy):
            target = target.obj
        values: list[Any] = []
        shape: list[Any] = [type(target), target.param, target.quote]
        for arg in args:
            if isinstance(arg, (list, tuple, set, frozenset)):
                shape.append(len(arg))
                values.extend(_adapt(v) for v in arg)
            else:
                shape.append(None)
                values.append(_adapt(arg))
        template = self._template(tuple(shape), args)
        params = [
            template.constants[i] if slot is None else values[slot]
            for i, slot in enumerate(template.slots)
        ]
        return template, self._database.execute_sql(template.sql, params)

    def _template(self, shape: tuple[Any, ...], args: Sequence[Any]) -> _Template:
        with self._lock:
            template = self._templates.get(shape)
            if template is not None:
                self._templates.move_to_end(shape)
                return template
        template = self._compile(args)
        with self._lock:
            self._templates[shape] = template
            while len(self._templates) > MAX_SHAPES:
                self._templates.popitem(last=False)
        return template

    def _compile(self, args: Sequence[Any]) -> _Template:
        position = 0
        markers: list[Any] = []
        for arg in args:
            if isinstance(arg, (list, tuple, set, frozenset)):
                markers.append([_Marker(f"\0{position + k}\0") for k in range(len(arg))])
                position += len(arg)
            else:
                markers.append(_Marker(f"\0{position}\0"))
                position += 1
        query = self._build(*markers)
        sql, params = query.sql()
        slots: list[int | None] = []
        for param in params:
            is_marker = isinstance(param, str) and param[:1] == "\0" and param[-1:] == "\0"
            slots.append(int(param[1:-1]) if is_marker else None)
        if {s for s in slots if s is not None} != set(range(position)):
            raise ValueError(
                "every argument of a compiled query must reach the SQL unconverted "
                f"(text or UUID columns); got parameters {params!r}"
            )
        return _Template(query, sql, slots, params)
