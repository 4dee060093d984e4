"""Conditional state transitions of runs and work items, in one place.

Every state change of the ledger is the same statement: move the row from one
of the states it may be in to the next, and set a few fields, *only if it is
still in one of them*. Two processes racing for one item (an answer and the
sweep, a cancel and a lease) each run it; the database lets one win, and the
loser sees 0 rows changed and leaves the item alone.

    WorkItem.objects.transition(pk, LEASED, DONE, finished_at=now) -> bool
    run.items.transition_all((PENDING, LEASED), CANCELLED, ...) -> int
    WorkItem.objects.transition_batch(pks, PENDING, LEASED, increment=("attempts",),
                                      returning=("attempts",), ...) -> [(pk, 1), ...]

`transition` on a bare manager is one prepared UPDATE written here, not built
by the ORM: it is the answer's hot path, where the ORM's query building cost
five times the statement (0.24 ms against 0.045 ms on SQLite); so is
`transition_batch`, the lease's. A queryset
that already carries filters (`run.items`) goes through the ORM's `update()`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

from django.apps import apps
from django.db import connections, models, router
from django.db.models.expressions import BaseExpression

if TYPE_CHECKING:
    from django.db.models import Field

_M = TypeVar("_M", bound=models.Model)


class TransitionQuerySet(models.QuerySet[_M]):
    """A QuerySet whose model has a state column (`state_field`)."""

    state_field = "state"

    def transition(
        self,
        pk: int,
        from_states: str | Iterable[str],
        to_state: str,
        /,
        *,
        where: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> bool:
        """Move row `pk` from one of `from_states` to `to_state`, setting
        `fields`, if it is still in one of them and matches `where` (equality on
        the model's own columns; None means IS NULL). True when it moved."""
        froms = _states(from_states)
        values = {self.state_field: to_state, **fields}
        if self.query.has_filters() or any(
            isinstance(v, BaseExpression) for v in values.values()
        ):
            return (
                self.filter(pk=pk, **dict(where or {})).transition_all(
                    froms, to_state, **fields
                )
                == 1
            )
        return _raw_transition(self, pk, froms, values, dict(where or {})) == 1

    def transition_batch(
        self,
        pks: Sequence[int],
        from_states: str | Iterable[str],
        to_state: str,
        /,
        *,
        increment: Sequence[str] = (),
        returning: Sequence[str] = (),
        **fields: Any,
    ) -> list[tuple[Any, ...]]:
        """Move the rows `pks` still in one of `from_states` to `to_state` in
        one UPDATE … RETURNING: `fields` set, each column of `increment` one
        more. Returns (pk, *returning) of each row that moved (the lease's
        batch: which items it won, with their attempts)."""
        if not pks:
            return []
        model = self.model
        connection = connections[
            getattr(self, "_db", None) or router.db_for_write(model)
        ]
        froms = _states(from_states)
        values = {self.state_field: to_state, **fields}
        sql = _batch_sql(
            model._meta.label,
            connection.vendor,
            self.state_field,
            tuple(values),
            tuple(increment),
            tuple(returning),
            len(froms),
            len(pks),
        )
        meta = model._meta
        params = [_prep(meta.get_field(k), v, connection) for k, v in values.items()]
        params += [*pks, *froms]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return [tuple(row) for row in cursor.fetchall()]

    def transition_all(
        self, from_states: str | Iterable[str], to_state: str, /, **fields: Any
    ) -> int:
        """Move every row of this queryset that is in one of `from_states` to
        `to_state`, setting `fields`; returns how many moved."""
        state_in = {f"{self.state_field}__in": _states(from_states)}
        return self.filter(**state_in).update(**{self.state_field: to_state}, **fields)


def _states(states: str | Iterable[str]) -> tuple[str, ...]:
    return (states,) if isinstance(states, str) else tuple(states)


def _raw_transition(
    qs: TransitionQuerySet[Any],
    pk: int,
    froms: tuple[str, ...],
    values: dict[str, Any],
    where: dict[str, Any],
) -> int:
    model = qs.model
    alias = getattr(qs, "_db", None) or router.db_for_write(model)
    connection = connections[alias]
    nulls = tuple(sorted(k for k, v in where.items() if v is None))
    equal = tuple(sorted(k for k, v in where.items() if v is not None))
    sql = _transition_sql(
        model._meta.label,
        connection.vendor,
        qs.state_field,
        tuple(values),
        len(froms),
        equal,
        nulls,
    )
    meta = model._meta
    params = [_prep(meta.get_field(k), v, connection) for k, v in values.items()]
    params.append(pk)
    params.extend(froms)
    params.extend(_prep(meta.get_field(k), where[k], connection) for k in equal)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount)


def _prep(field: Any, value: Any, connection: Any) -> Any:
    if isinstance(value, models.Model):
        value = value.pk
    return field.get_db_prep_save(value, connection)


@lru_cache(maxsize=256)
def _batch_sql(
    label: str,
    vendor: str,
    state_name: str,
    names: tuple[str, ...],
    increment: tuple[str, ...],
    returning: tuple[str, ...],
    n_from: int,
    n_pks: int,
) -> str:
    """transition_batch's UPDATE for one shape, built once per process."""
    model = apps.get_model(label)
    quote = connections[router.db_for_write(model)].ops.quote_name
    column = _columns(model)
    sets = [f"{column(n)} = %s" for n in names]
    sets += [f"{column(n)} = {column(n)} + 1" for n in increment]
    pk = column(model._meta.pk.name)
    pks, froms = (", ".join(["%s"] * n) for n in (n_pks, n_from))
    back = ", ".join([pk, *(column(n) for n in returning)])
    # Only quoted column names from the model are formatted in; values are params.
    return (
        f"UPDATE {quote(model._meta.db_table)} SET {', '.join(sets)} "  # noqa: S608
        f"WHERE {pk} IN ({pks}) AND {column(state_name)} IN ({froms}) "
        f"RETURNING {back}"
    )


def _columns(model: Any) -> Any:
    """name -> the quoted column of one of the model's own fields."""
    quote = connections[router.db_for_write(model)].ops.quote_name
    meta = model._meta

    def column(name: str) -> str:
        field: Field[Any, Any] = meta.get_field(name)
        assert field.concrete and field.column, f"{model.__name__}.{name}"
        return str(quote(field.column))

    return column


@lru_cache(maxsize=256)
def _transition_sql(
    label: str,
    vendor: str,
    state_name: str,
    names: tuple[str, ...],
    n_from: int,
    equal: tuple[str, ...],
    nulls: tuple[str, ...],
) -> str:
    """The UPDATE for one shape of transition, built once per process (the
    vendor is part of the key only so that tests switching databases never
    reuse another's quoting)."""
    model = apps.get_model(label)
    quote = connections[router.db_for_write(model)].ops.quote_name
    meta = model._meta
    column = _columns(model)
    sets = ", ".join(f"{column(n)} = %s" for n in names)
    state = column(state_name)
    marks = ", ".join(["%s"] * n_from)
    conditions = [f"{column(meta.pk.name)} = %s", f"{state} IN ({marks})"]
    conditions += [f"{column(n)} = %s" for n in equal]
    conditions += [f"{column(n)} IS NULL" for n in nulls]
    # Only quoted column names from the model are formatted in; values are params.
    return (
        f"UPDATE {quote(meta.db_table)} SET {sets} "  # noqa: S608
        f"WHERE {' AND '.join(conditions)}"
    )
