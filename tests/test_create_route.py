"""The create route's hot path (POST /api/runs): the middleware chain runs in
the async view's mode with no thread hop, and the 201 body built from what the
create holds equals the run read back."""

from __future__ import annotations

import logging

import pytest
from django.core.handlers.asgi import ASGIHandler
from django.test import AsyncClient, override_settings


def test_no_middleware_is_adapted_to_sync_in_the_asgi_handler(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Django logs (DEBUG) every middleware it wraps in sync_to_async, i.e. a
    thread per request; the chain has none, so the async create view runs on
    the loop up to its own pool hop."""
    with (
        override_settings(DEBUG=True),
        caplog.at_level(logging.DEBUG, "django.request"),
    ):
        handler = ASGIHandler()
    messages = [r.getMessage() for r in caplog.records]
    assert [m for m in messages if "adapted for middleware" in m] == []
    assert handler._middleware_chain is not None


@pytest.mark.django_db
@pytest.mark.asyncio
async def test_async_chain_still_unhides_an_sdk_path_and_serves_static_files() -> None:
    client = AsyncClient()
    # HOST=http://hub/?concurrency=4: the SDK asks for /?concurrency=4/v2/...;
    # put back, it reaches the Ango API (no key: refused), not the home page.
    hidden = await client.get("/?concurrency=4/v2/project/1")
    plain = await client.get("/?concurrency=4")
    static = await client.get("/static/img/favicon.svg")

    assert hidden.status_code in (401, 403), hidden.status_code
    assert plain.status_code in (200, 302)
    assert static.status_code == 200
    assert b"<svg" in b"".join(static.streaming_content)  # type: ignore[arg-type]
