"""REST connector delivery: jobs POSTed from Celery, settled by the reply; the
connector's heartbeat probe; its POST /v2/pluginLog and /v2/pluginResponse."""

from __future__ import annotations

import functools
import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from plugins_app import protocol
from plugins_app.plugins.models import (
    Delivery,
    FailedHeartbeat,
    Plugin,
    PluginInstance,
)
from plugins_app.plugins.services import connector_secret
from plugins_app.runs import connector
from plugins_app.runs.dispatch.leases import job_with_key, lease, next_pending_item
from plugins_app.runs.ledger import item_fail, item_time_out, retry_or_fail
from plugins_app.runs.logs import logs_ingest, parse_log_event
from plugins_app.runs.models import (
    Run,
    WorkItem,
)
from plugins_app.runs.notify import hub_log
from plugins_app.runs.responses import item_respond
from plugins_app.runs.tasks import deliver_connector_job
from plugins_app.runs.wakeup import dispatch_pending

log = logging.getLogger(__name__)


def connector_instance(plugin: Plugin) -> PluginInstance:
    """The one PluginInstance row that stands for a plugin's REST connector: it
    holds the leases, and the heartbeat probe keeps it live."""
    instance, _ = PluginInstance.objects.get_or_create(
        channel_name=protocol.connector_channel(plugin.pk),
        defaults={
            "plugin": plugin,
            "address": plugin.connector_url,
            # Not live until a probe answers.
            "last_seen_at": timezone.now() - timedelta(days=1),
        },
    )
    return instance


def dispatch_rest(plugin_id: int) -> int:
    """Lease pending items to the plugin's connector up to its concurrency and
    hand each to a Celery task by id (the HTTP call never runs in a request).
    A connector is not required to be live: a dead URL fails the attempt,
    visibly, and the ledger retries it."""
    sent = 0
    while True:
        item = next_pending_item(plugin_id)
        if item is None:
            return sent
        plugin = item.run.plugin
        instance = connector_instance(plugin)
        held = WorkItem.objects.filter(instance=instance, state=WorkItem.State.LEASED)
        if held.count() >= plugin.concurrency:
            return sent
        hold = timedelta(seconds=plugin.timeout_seconds + 30)
        item.instance = instance
        with transaction.atomic():
            if lease([item], hold=hold):
                transaction.on_commit(functools.partial(_deliver_later, item.pk))
                sent += 1


def _deliver_later(item_id: int) -> None:
    # A Celery task makes the HTTP call: never in the request that leased.
    deliver_connector_job.delay(item_id)


def connector_deliver(item_id: int) -> str:
    """POST a leased item's job to its plugin's connector and settle the attempt
    by the answer: applied like a socket response; unreachable → retried while
    attempts remain; refused → failed, saying why. Returns a word for the log."""
    item = (
        WorkItem.objects.select_related(
            "run__plugin", "run__project", "run__created_by", "asset__task", "instance"
        )
        .filter(pk=item_id, state=WorkItem.State.LEASED)
        .first()
    )
    if item is None or item.instance is None:
        return "stale"
    plugin = item.run.plugin
    url = plugin.connector_url
    secret = connector_secret(plugin)
    if not url or secret is None:
        item_fail(item, WorkItem.Failure.ERROR, _NO_CONNECTOR.format(url=url or "—"))
        return "refused"
    with transaction.atomic():
        job = job_with_key(item)
    assert item.deadline_at is not None  # a leased item has one
    remaining = (item.deadline_at - timezone.now()).total_seconds()
    reply = connector.post_job(url, secret, job, timeout=max(1.0, remaining))
    return _connector_settle(item, reply)


_NO_CONNECTOR = (
    "The hub cannot call this plugin's REST connector (URL {url}): it needs a URL "
    "and a copy of the secret, kept only for secrets created or rotated while the "
    "plugin's delivery is REST. Rotate the secret on the plugin's page."
)


def _connector_settle(item: WorkItem, reply: connector.Reply) -> str:
    channel = item.instance.channel_name if item.instance else ""
    url = item.run.plugin.connector_url.rstrip("/") + "/plugin"
    if reply.status == 200 and reply.body is None and not reply.error:
        hub_log(
            item.run,
            f"{url} accepted the job; its result comes on /v2/pluginResponse.",
            item=item,
        )
        return "accepted"
    if (
        reply.status == 200
        and isinstance(reply.body, dict)
        # The SDK echoes the job's session: any other JSON is not a plugin's
        # answer, and is not applied or quoted (it could be any service's).
        and reply.body.get("session") == item.session
    ):
        return item_respond(
            session=item.session, payload=reply.body, channel_name=channel
        )
    if reply.status == 500:
        # The SDK answers 500 when the callback raised (its log says why).
        payload = {"error": True, "session": item.session}
        return item_respond(session=item.session, payload=payload, channel_name=channel)
    if reply.status == 0 and "no answer within" in reply.error:
        item_time_out(item, timezone.now())
        return "timeout"
    if reply.refused:
        item_fail(
            item, WorkItem.Failure.ERROR, f"The hub does not call {url}: {reply.error}."
        )
        return "refused"
    if reply.unreachable:
        return _connector_unreachable(item, f"{url}: {reply.reason}")
    why = {
        401: "refused the hub's Secret header (HTTP 401): start the connector with "
        "the plugin's current secret in PLUGIN_SECRET",
        404: "has no /plugin endpoint (HTTP 404): is it an imerit-ango plugin "
        "started with CONNECTOR=REST?",
    }.get(reply.status, f"answered {_not_an_answer(reply)}")
    item_fail(item, WorkItem.Failure.ERROR, f"The REST connector at {url} {why}.")
    return "refused"


def _not_an_answer(reply: connector.Reply) -> str:
    if reply.status == 200 and not reply.error:
        return "HTTP 200 (not a plugin's answer)"  # JSON, but not the SDK's
    return reply.reason


def _connector_unreachable(item: WorkItem, error: str) -> str:
    plugin = item.run.plugin
    outcome = retry_or_fail(
        item,
        WorkItem.Failure.ERROR,
        final=f"The plugin's REST connector could not be reached after "
        f"{item.attempts} attempt(s): {error}. Check that it runs and that the "
        "hub can reach its URL (the plugin page shows its last heartbeat probe).",
        retry=f"Could not reach the REST connector (attempt {item.attempts} of "
        f"{plugin.max_attempts}): {error}; the job goes back to the queue.",
        level="WARNING",
    )
    if outcome == "retry":
        dispatch_pending(plugin.pk)
    return outcome


def connector_probe(plugin_id: int) -> bool:
    """GET <url>/heartbeat with the Secret header: an "ok" keeps the connector
    live on the plugins page; a failure marks it down (recorded for admins once
    per outage, not once per probe)."""
    plugin = Plugin.objects.filter(pk=plugin_id, delivery=Delivery.REST).first()
    if plugin is None or not plugin.connector_url:
        return False
    secret = connector_secret(plugin)
    instance = connector_instance(plugin)
    reply = (
        connector.probe(
            plugin.connector_url, secret, timeout=settings.HUB_CONNECTOR_PROBE_TIMEOUT
        )
        if secret is not None
        else connector.Reply(0, error="no copy of the secret: rotate it")
    )
    now = timezone.now()
    if reply.status == 200 and reply.body == "ok":
        PluginInstance.objects.filter(pk=instance.pk).update(
            address=plugin.connector_url,
            last_heartbeat=now,
            last_seen_at=now,
            disconnected_at=None,
        )
        return True
    was_up = PluginInstance.objects.filter(
        pk=instance.pk, disconnected_at__isnull=True
    ).update(disconnected_at=now)
    if was_up:
        reason = (
            'HTTP 200 (not the SDK\'s "ok")'
            if reply.status == 200 and not reply.error
            else reply.reason
        )
        FailedHeartbeat.objects.create(
            plugin=plugin,
            claimed_id=plugin.public_id,
            address=plugin.connector_url[:100],
            reason=f"heartbeat probe failed: {reason}"[:200],
        )
    return False


def connector_logs_ingest(run: Run, data: Any) -> bool:
    """A `POST /v2/pluginLog` record (the SDK's REST logger): stored like a
    socket `log` event, if its session is an item of the key's run."""
    record = parse_log_event(data)
    if record is None or not run.items.filter(session=record.session).exists():
        return False
    logs_ingest([record], channel_name=protocol.connector_channel(run.plugin_id))
    return True


def connector_respond(run: Run, data: Any) -> str:
    """A `POST /v2/pluginResponse` (export results, or errors the SDK reports
    there): applied like a socket response, once, if the session is the run's."""
    session = data.get("session") if isinstance(data, dict) else None
    if not isinstance(session, str) or not run.items.filter(session=session).exists():
        return "unknown-session"
    channel = protocol.connector_channel(run.plugin_id)
    return item_respond(session=session, payload=data, channel_name=channel)
