"""Model rows read and written with SQL written once, for the hot paths where
the ORM builds a query for every call and building it costs several times
running it (the create route: the plugin and project it names, the assets,
the run and its items).

Reads: `ModelRows(Model).select("a")` is every concrete column of the model
in the model's order; `fetch` turns the rows of such a SELECT into model
instances as `Model.objects.raw` does (each column's converters, then
`from_db`), without RawQuerySet's per-call column mapping.

Writes: `insert_values(obj)` is what the ORM's INSERT of an unsaved instance
sends (every local concrete column but an unset auto primary key, each value
from `pre_save` and `get_db_prep_save`), so a row written raw is the row
`save()` or `bulk_create` would have written.

Only quoted names from the models are formatted into SQL; values are params.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, TypeVar
from weakref import WeakKeyDictionary

from django.db import connections, models, router
from django.db.models.sql import Query

M = TypeVar("M", bound=models.Model)


class ModelRows(Generic[M]):
    def __init__(self, model: type[M]) -> None:
        self.model = model
        self.fields = list(model._meta.concrete_fields)
        self.attnames = [f.attname for f in self.fields]
        self.width = len(self.fields)
        # Where the primary key is among the columns (NULL: no row joined).
        self.pk_at = self.fields.index(model._meta.pk)
        self._select: dict[tuple[str, str], str] = {}
        # Per connection: the converters of each column (a backend's
        # datetimes, booleans, JSON), as the ORM's compiler gives them.
        self._converters: WeakKeyDictionary[Any, Any] = WeakKeyDictionary()

    def select(self, alias: str) -> str:
        """`alias."col", …` for every concrete column, in the model's order."""
        conn = connections[router.db_for_read(self.model)]
        key = (conn.vendor, alias)
        found = self._select.get(key)
        if found is None:
            quote = conn.ops.quote_name
            found = ", ".join(f"{alias}.{quote(str(f.column))}" for f in self.fields)
            self._select[key] = found
        return found

    def fetch(self, sql: str, params: Sequence[Any]) -> list[M]:
        """The model instances of a SELECT of `select(...)`'s columns first."""
        db = router.db_for_read(self.model)
        with connections[db].cursor() as cursor:
            cursor.execute(sql, params)
            rows: Any = cursor.fetchall()
        return [obj for obj in self.instances(rows, db) if obj is not None]

    def instances(
        self, rows: Sequence[Sequence[Any]], db: str, start: int = 0
    ) -> list[M | None]:
        """Each row's instance made of its `select(...)` columns from column
        `start` on (a SELECT of two models' columns: the second one's at the
        first one's width); None where the primary key is NULL (a LEFT JOIN
        that found no row)."""
        if not rows:
            return []
        compiler, converters = self._compiled(connections[db])
        end = start + self.width
        part: Any = [row[start:end] for row in rows]
        if converters:
            part = compiler.apply_converters(part, converters)
        at = self.pk_at
        from_db = self.model.from_db
        return [
            None if values[at] is None else from_db(db, self.attnames, values)
            for values in part
        ]

    def _compiled(self, conn: Any) -> tuple[Any, dict[int, Any]]:
        found = self._converters.get(conn)
        if found is None:
            compiler = conn.ops.compiler("SQLCompiler")(
                Query(self.model), conn, conn.alias
            )
            table = self.model._meta.db_table
            cols = [f.get_col(table) for f in self.fields]
            found = self._converters[conn] = (compiler, compiler.get_converters(cols))
        return found


def insert_values(
    obj: models.Model, conn: Any
) -> tuple[list[models.Field[Any, Any]], list[Any]]:
    """The fields and parameters of the ORM's INSERT of unsaved `obj`."""
    meta = obj._meta
    fields: list[models.Field[Any, Any]] = []
    params: list[Any] = []
    for field, plain in _plan(type(obj)):
        if field is meta.auto_field and obj.pk is None:  # an AutoField is the pk
            continue
        if plain is not None:
            value = getattr(obj, field.attname)
            # What the field's conversion returns for these, done without it
            # (~10 µs a field, 40 fields a run).
            if value is None or type(value) is plain:
                fields.append(field)
                params.append(value)
                continue
        value = field.get_db_prep_save(field.pre_save(obj, True), conn)
        if hasattr(value, "as_sql"):
            # DatabaseDefault (a db_default without a Python default) or
            # another expression: the ORM compiles those; nothing here does.
            raise TypeError(
                f"{meta.label}.{field.name}: an expression cannot be written "
                "raw; give the field a Python default"
            )
        fields.append(field)
        params.append(value)
    return fields, params


# Field classes (exactly these, not subclasses) whose get_db_prep_save returns
# a value of this type, and None, unchanged, on every backend, and whose
# pre_save is the attribute: their to_python/get_prep_value only convert
# other types.
_PLAIN: dict[type[Any], type] = {
    models.CharField: str,
    models.TextField: str,
    models.IntegerField: int,
    models.SmallIntegerField: int,
    models.BigIntegerField: int,
    models.PositiveIntegerField: int,
    models.PositiveSmallIntegerField: int,
    models.BooleanField: bool,
}
_INT_KEYS = (models.AutoField, models.BigAutoField)
_PLANS: dict[type[models.Model], list[tuple[Any, type | None]]] = {}


def _plan(model: type[models.Model]) -> list[tuple[Any, type | None]]:
    """The model's INSERT fields, each with the one type whose values (and
    None) go in as they are, or None (datetimes, JSON...: the field's own
    conversion)."""
    found = _PLANS.get(model)
    if found is None:
        found = []
        for field in model._meta.local_concrete_fields:
            plain = _PLAIN.get(type(field))
            if (
                isinstance(field, models.ForeignKey)
                and type(field) is models.ForeignKey
            ):
                # An integer key: the target's conversion of an int is the int.
                target = type(field.target_field)
                plain = int if target in _INT_KEYS else None
            found.append((field, plain))
        _PLANS[model] = found
    return found


def saved(obj: models.Model, pk: Any, db: str) -> None:
    """What save() and bulk_create leave on an instance they inserted."""
    obj.pk = pk
    obj._state.adding = False
    obj._state.db = db
