"""HTTP to a plugin's REST connector (the SDK's `CONNECTOR=REST` mode, a FastAPI
app): `POST <url>/plugin` with the job and the `Secret` header, answered
synchronously with `{"response", "session"}` (or null when the result comes
later on /v2/pluginResponse), and `GET <url>/heartbeat` answered `"ok"`.
Called only from Celery tasks, never from a web request, and only through
plugins_app/ops/egress.py (no internal address, no redirect, no remote text)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from plugins_app.ops import egress

MAX_REPLY_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Reply:
    """`status` 0 means no HTTP answer at all (`error` says why). `error` is
    always one of the hub's fixed texts: a connector's body is never quoted
    (the URL could point at some other service whose answer is not ours to
    show), only parsed when it is JSON."""

    status: int
    body: Any = None
    error: str = ""
    # The URL is not one the hub calls (egress policy): retrying cannot help.
    refused: bool = False

    @property
    def unreachable(self) -> bool:
        return not self.refused and (self.status == 0 or self.status in (502, 503, 504))

    @property
    def reason(self) -> str:
        """For run errors and the failed-probe record: "HTTP 404",
        "HTTP 302 (redirects are not followed)", "unreachable"."""
        if self.status == 0:
            return self.error
        return f"HTTP {self.status}" + (f" ({self.error})" if self.error else "")


def post_job(url: str, secret: str, job: dict[str, Any], *, timeout: float) -> Reply:
    return _call(url.rstrip("/") + "/plugin", secret, json.dumps(job).encode(), timeout)


def probe(url: str, secret: str, *, timeout: float) -> Reply:
    return _call(url.rstrip("/") + "/heartbeat", secret, None, timeout)


def _call(url: str, secret: str, data: bytes | None, timeout: float) -> Reply:
    headers = {"Secret": secret}
    if data is not None:
        headers["Content-Type"] = "application/json"
    try:
        answer = egress.fetch(
            url,
            method="GET" if data is None else "POST",
            headers=headers,
            body=data,
            timeout=timeout,
            max_bytes=MAX_REPLY_BYTES,
        )
    except egress.Refused as exc:
        return Reply(0, error=f"the URL {exc}", refused=True)
    except egress.EgressError as exc:
        return Reply(0, error=str(exc))
    if 300 <= answer.status < 400:
        return Reply(answer.status, error="redirects are not followed")
    if not 200 <= answer.status < 300:
        return Reply(answer.status)
    if answer.too_large:
        return Reply(answer.status, error=f"answer over {MAX_REPLY_BYTES:,} bytes")
    try:
        return Reply(answer.status, body=json.loads(answer.body or b"null"))
    except ValueError:
        return Reply(answer.status, error="not JSON")
