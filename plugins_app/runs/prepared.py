"""A queryset compiled once and run many times: for reads on the answer's hot
path, where building the SQL of a `select_related` query cost the ORM more
than the query itself (~0.7 of ~1 ms for an item with its run, plugin,
project, asset and instance on SQLite).

    by_session = PreparedQuery(
        lambda p: WorkItem.objects.select_related("run").filter(session=p)
    )
    item = by_session.first("ab12…")

The builder is called once per database connection with a marker value; the
compiled SQL is kept with the marker's place in its parameters, and every call
executes it with the real value and turns the rows into model instances the
way the ORM does (`from_db`, the select_related caches, each column's
converters). Only querysets the ORM would return model instances for, with one
parameter, are supported.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db import connections, models, router
from django.db.models.query import get_related_populators

_M = TypeVar("_M", bound=models.Model)


# A parameter value no caller passes, found again in the compiled params.
_MARKER = "\x00prepared-query-marker\x00"


@dataclass(frozen=True)
class _Compiled:
    sql: str
    params: tuple[Any, ...]
    at: int  # the parameter's place in params
    compiler: Any  # the SQLCompiler: its columns' converters, its connection
    alias: str
    model: type[models.Model]
    init_list: list[str]  # the model's own columns, as from_db takes them
    start: int
    end: int
    populators: list[Any]  # the select_related instances, as the ORM fills them
    converters: dict[int, Any]  # per column, what turns its value into Python


class PreparedQuery(Generic[_M]):
    def __init__(self, build: Callable[[Any], models.QuerySet[_M]]) -> None:
        self._build = build
        self._local = threading.local()

    def first(self, value: Any) -> _M | None:
        compiled = self._compiled()
        params = list(compiled.params)
        params[compiled.at] = value
        with connections[compiled.alias].cursor() as cursor:
            cursor.execute(compiled.sql, params)
            row = cursor.fetchone()
        if row is None:
            return None
        if compiled.converters:
            (row,) = compiled.compiler.apply_converters([row], compiled.converters)
        obj: _M = compiled.model.from_db(  # type: ignore[assignment]
            compiled.alias, compiled.init_list, row[compiled.start : compiled.end]
        )
        for populator in compiled.populators:
            populator.populate(row, obj)
        return obj

    def _compiled(self) -> _Compiled:
        # Per thread: each has its own connection, which the compiler keeps.
        compiled: _Compiled | None = getattr(self._local, "compiled", None)
        if (
            compiled is not None
            and connections[compiled.alias] is compiled.compiler.connection
        ):
            return compiled
        queryset = self._build(_MARKER)[:1]
        alias = queryset.db or router.db_for_read(queryset.model)
        compiler = queryset.query.get_compiler(using=alias)
        sql, params = compiler.as_sql()
        places = [n for n, p in enumerate(params) if p == _MARKER]
        if len(places) != 1:
            raise ValueError("a prepared query takes exactly one parameter")
        klass_info = compiler.klass_info
        assert klass_info is not None
        select_fields = klass_info["select_fields"]
        start, end = select_fields[0], select_fields[-1] + 1
        compiled = _Compiled(
            sql=sql,
            params=tuple(params),
            at=places[0],
            compiler=compiler,
            alias=alias,
            model=klass_info["model"],
            init_list=[f[0].target.attname for f in compiler.select[start:end]],
            start=start,
            end=end,
            # django-stubs type the next Django's signature (with fetch_mode).
            populators=get_related_populators(  # type: ignore[call-arg]
                klass_info, compiler.select, alias
            ),
            converters=compiler.get_converters(
                [s[0] for s in compiler.select[: compiler.col_count]]
            ),
        )
        self._local.compiled = compiled
        return compiled
