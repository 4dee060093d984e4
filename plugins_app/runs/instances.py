"""Plugin instances: a socket's heartbeat, pongs, and its going away."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from plugins_app import protocol
from plugins_app.ops.auth_guard import failures_recorded, heartbeat_failed
from plugins_app.plugins.models import (
    FailedHeartbeat,
    Plugin,
    PluginInstance,
    lease_ttl,
)
from plugins_app.plugins.secrets import token_matches
from plugins_app.plugins.versions import clean_version
from plugins_app.runs.ledger import item_fail, requeue
from plugins_app.runs.models import (
    WorkItem,
)
from plugins_app.runs.notify import hub_log
from plugins_app.runs.wakeup import dispatch_after_commit
from plugins_app.workspace.bulk import quoted

log = logging.getLogger(__name__)


def instance_heartbeat(
    *,
    channel_name: str,
    plugin_public_id: Any,
    secret: Any,
    address: str,
    capacity: int | None = None,
    version: Any = "",
) -> PluginInstance | None:
    """Authenticate a `heartbeat` event. A bad id or secret is recorded for the
    admins and returns None: the socket stays open but never gets work. The
    right secret always authenticates; failures are limited per address and
    plugin (unknown ids share one key), and over the limit they are no longer
    recorded (ops/auth_guard.py)."""
    plugin = (
        Plugin.objects.filter(public_id=plugin_public_id).first()
        if isinstance(plugin_public_id, str)
        else None
    )
    if plugin is None:
        _heartbeat_failed(None, plugin_public_id, address, "unknown plugin id")
        return None
    if not isinstance(secret, str) or not token_matches(secret, plugin.secret_hash):
        _heartbeat_failed(plugin, plugin_public_id, address, "wrong secret")
        return None
    now = timezone.now()
    instance, created = PluginInstance.objects.update_or_create(
        channel_name=channel_name,
        defaults={
            "plugin": plugin,
            "address": address,
            "last_heartbeat": now,
            "last_seen_at": now,
            "capacity": capacity,
            "version": clean_version(version),
            "disconnected_at": None,
        },
    )
    if created:
        log.info("plugin %s connected from %s", plugin.public_id, address)
        dispatch_after_commit(plugin.pk)
    return instance


def _heartbeat_failed(
    plugin: Plugin | None, claimed_id: Any, address: str, reason: str
) -> None:
    key = plugin.public_id if plugin else None
    if not failures_recorded(address, key):
        return None  # over the limit: one alert was sent, the table stays small
    log.warning(
        "heartbeat refused from %s for plugin id %r: %s", address, claimed_id, reason
    )
    FailedHeartbeat.objects.create(
        plugin=plugin, claimed_id=str(claimed_id)[:200], address=address, reason=reason
    )
    heartbeat_failed(address, key)
    return None


def instances_seen(channel_names: Iterable[str]) -> int:
    """These sockets answered a ping: their instances are alive, and so are the
    leases they hold. A few statements for any number of them (a web process
    saves the pongs of all its sockets together); returns the leases renewed.

    The leases are renewed first, and the sightings never wait on an instance
    row a transaction holds: every lease writes its instances' rows
    (`last_dispatch_at`) and holds them until it commits, so one UPDATE of all
    the rows waited on every dispatch in turn. With dispatches running at once
    that wait outlasted the leases' TTL: live instances' jobs were taken back
    and sent again (bench/fleet.py answered ~800 jobs twice)."""
    names = list(channel_names)
    now = timezone.now()
    renewed = WorkItem.objects.filter(
        state=WorkItem.State.LEASED,
        instance__channel_name__in=names,
        instance__disconnected_at__isnull=True,
    ).update(lease_expires_at=now + lease_ttl())
    _sighted(names, now)
    return renewed


def _sighted(names: list[str], now: Any) -> None:
    """`last_seen_at` of these connected instances. On PostgreSQL the rows no
    transaction holds in one statement that skips the others, then each held
    one in a statement (and transaction) of its own: it waits on that row's
    holder alone, holding no other row, so it closes no circle with a dispatch
    that writes several. SQLite writes one transaction at a time anyway."""
    live = PluginInstance.objects.filter(
        channel_name__in=names, disconnected_at__isnull=True
    )
    if connection.vendor != "postgresql":
        live.update(last_seen_at=now)
        return
    free_sql, one_sql = _sighted_sql()
    at = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        cursor.execute(free_sql, [at, names])
        done = {row[0] for row in cursor.fetchall()}
        for name in names:
            if name not in done:
                cursor.execute(one_sql, [at, name])


@functools.cache
def _sighted_sql() -> tuple[str, str]:
    """(the rows no transaction holds, RETURNING their channel names; one row)."""
    table = quoted(PluginInstance)
    pk, name, gone, seen = (
        quoted(PluginInstance, f)
        for f in ("id", "channel_name", "disconnected_at", "last_seen_at")
    )
    free = (
        f"UPDATE {table} SET {seen} = %s WHERE {pk} IN "  # noqa: S608
        f"(SELECT {pk} FROM {table} WHERE {name} = ANY(%s) AND {gone} IS NULL "
        f"FOR UPDATE SKIP LOCKED) RETURNING {name}"
    )
    one = (
        f"UPDATE {table} SET {seen} = %s "  # noqa: S608
        f"WHERE {name} = %s AND {gone} IS NULL"
    )
    return free, one


def instance_disconnect(*, channel_name: str) -> None:
    """The socket closed: give its leased items back so another instance (or this
    one, reconnected) takes them; a job that has already cost this many
    connections fails instead (a frame the server cannot take would loop)."""
    instance = PluginInstance.objects.filter(channel_name=channel_name).first()
    if instance is None:
        return
    now = timezone.now()
    with transaction.atomic():
        PluginInstance.objects.filter(pk=instance.pk).update(disconnected_at=now)
        leased = WorkItem.objects.filter(
            instance=instance, state=WorkItem.State.LEASED
        ).select_related("run__plugin")
        for item in leased:
            if item.attempts >= item.run.plugin.max_attempts:
                item_fail(
                    item,
                    WorkItem.Failure.ERROR,
                    f"The plugin's connection dropped while holding this job "
                    f"{item.attempts} times; giving up.",
                )
                continue
            hub_log(
                item.run,
                f"Instance at {instance.address} disconnected; the job goes back "
                "to the queue.",
                item=item,
            )
            requeue(item, now)
    dispatch_after_commit(instance.plugin_id)


def instances_forget_all() -> int:
    """At the start of the only ASGI process (embedded mode): every socket of the
    previous process is gone, so its instances are not live and their jobs go
    back to the queue for the plugins to pick up when they reconnect. REST
    connectors have no socket here: their calls run in Celery and go on."""
    channel_names = list(
        PluginInstance.objects.filter(disconnected_at__isnull=True)
        .exclude(channel_name__startswith=protocol.CONNECTOR_PREFIX)
        .values_list("channel_name", flat=True)
    )
    for channel_name in channel_names:
        instance_disconnect(channel_name=channel_name)
    return len(channel_names)
