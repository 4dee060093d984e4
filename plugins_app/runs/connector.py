"""HTTP to a plugin's REST connector (the SDK's `CONNECTOR=REST` mode, a FastAPI
app): `POST <url>/plugin` with the job and the `Secret` header, answered
synchronously with `{"response", "session"}` (or null when the result comes
later on /v2/pluginResponse), and `GET <url>/heartbeat` answered `"ok"`.
Called only from Celery tasks, never from a web request."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

USER_AGENT = "plugin-hub-connector/1"
MAX_REPLY_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Reply:
    """`status` 0 means no HTTP answer at all (`error` says why)."""

    status: int
    body: Any = None
    error: str = ""

    @property
    def unreachable(self) -> bool:
        return self.status == 0 or self.status in (502, 503, 504)


def post_job(url: str, secret: str, job: dict[str, Any], *, timeout: float) -> Reply:
    return _call(url.rstrip("/") + "/plugin", secret, json.dumps(job).encode(), timeout)


def probe(url: str, secret: str, *, timeout: float) -> Reply:
    return _call(url.rstrip("/") + "/heartbeat", secret, None, timeout)


def _call(url: str, secret: str, data: bytes | None, timeout: float) -> Reply:
    if not url.startswith(("http://", "https://")):
        return Reply(0, error=f"{url} is not an http(s) URL")
    headers = {"Secret": secret, "User-Agent": USER_AGENT}
    if data is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            raw = response.read(MAX_REPLY_BYTES + 1)
            status = response.status
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, error=_short(exc.read(2000)))
    except TimeoutError:
        return Reply(0, error=f"no answer within {timeout:.0f} s")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return Reply(0, error=str(reason))
    if len(raw) > MAX_REPLY_BYTES:
        return Reply(status, error=f"the answer is over {MAX_REPLY_BYTES:,} bytes")
    try:
        return Reply(status, body=json.loads(raw or b"null"))
    except ValueError:
        return Reply(status, error="the answer is not JSON: " + _short(raw))


def _short(raw: bytes) -> str:
    return raw[:300].decode("utf-8", "replace")
