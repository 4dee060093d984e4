from __future__ import annotations

from django.db import models


class OutboxMessage(models.Model):
    """A channel-layer message written by a process that cannot reach the
    in-memory layer (Celery, the CLI); the ASGI process delivers and deletes it.
    Unused when the channel layer is Redis."""

    # "send" to a channel name, or "group_send" to a group.
    method = models.CharField(max_length=20)
    target = models.CharField(max_length=200)
    message = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.method} to {self.target}"
