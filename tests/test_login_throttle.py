"""Password logins are throttled per account and per client address: after the
limit even the right password is refused, the login page says why and for how
long, and the window's end lets it through; the admin's login counts and is
refused too; the JSON API's bearer tokens are not affected."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from io import StringIO
from typing import Any

import httpx
import pytest
from django.core.management import call_command
from django.test import Client

from plugins_app.ops import window

WINDOW = 900
START = WINDOW * 2_000_000 + 100.0  # 100 s into a window: 800 s left
ADDRESS = "198.51.100.7"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[Clock]:
    settings.HUB_LOGIN_FAILURES_PER_ACCOUNT = 5
    settings.HUB_LOGIN_FAILURES_PER_ADDRESS = 8
    settings.HUB_LOGIN_WINDOW_SECONDS = WINDOW
    fake = Clock(START)
    monkeypatch.setattr(window, "clock", fake)
    yield fake


def log_in(
    username: str, password: str, address: str = ADDRESS, client: Client | None = None
) -> Any:
    client = client or Client(REMOTE_ADDR=address)
    return client.post("/login/", {"username": username, "password": password})


def logged_in(response: Any) -> bool:
    return response.status_code == 302 and "_auth_user_id" in response.client.session


def test_it_throttles_an_account_and_refuses_the_right_password(
    workspace: Any, clock: Clock
) -> None:
    for _ in range(4):
        response = log_in("bob", "wrong")
        assert response.status_code == 200
        assert b"correct username and password" in response.content
    # The failure that reaches the limit already says so.
    response = log_in("bob", "wrong")
    assert response.status_code == 429
    assert b"Too many failed logins" in response.content

    response = log_in("bob", "pw")
    assert response.status_code == 429
    assert not logged_in(response)
    text = response.content.decode()
    assert "Too many failed logins for this account" in text
    assert "paused for 14 minutes" in text  # 800 s left in the window
    assert response["Retry-After"] == "800"
    # Per account: another address does not help.
    response = log_in("bob", "pw", address="203.0.113.9")
    assert response.status_code == 429 and not logged_in(response)
    # Another account from the first address still logs in (under its limit).
    assert logged_in(log_in("alice", "pw"))

    clock.now += 799
    response = log_in("bob", "pw")
    assert response.status_code == 429
    assert "paused for 1 second;" in response.content.decode()
    clock.now += 1  # the window ends
    assert logged_in(log_in("bob", "pw"))


def test_it_throttles_an_address_trying_many_accounts(
    workspace: Any, clock: Clock
) -> None:
    for n in range(8):
        log_in(f"guess-{n}", "wrong")
    response = log_in("bob", "pw")
    assert response.status_code == 429 and not logged_in(response)
    assert "Too many failed logins from your address" in response.content.decode()
    assert logged_in(log_in("bob", "pw", address="203.0.113.9"))


def test_a_login_clears_its_accounts_failures(workspace: Any, clock: Clock) -> None:
    for _ in range(4):
        log_in("bob", "wrong")
    assert logged_in(log_in("bob", "pw", address="203.0.113.9"))
    for _ in range(4):
        log_in("bob", "wrong", address="203.0.113.10")
    assert logged_in(log_in("bob", "pw", address="203.0.113.11"))


def test_the_admin_login_counts_and_is_refused(workspace: Any, clock: Clock) -> None:
    admin_page = Client(REMOTE_ADDR=ADDRESS)
    for _ in range(5):
        admin_page.post("/admin/login/", {"username": "alice", "password": "wrong"})
    response = admin_page.post("/admin/login/", {"username": "alice", "password": "pw"})
    assert "_auth_user_id" not in admin_page.session
    response = log_in("alice", "pw", address="203.0.113.9")
    assert response.status_code == 429 and not logged_in(response)


def test_the_api_token_is_not_affected(workspace: Any, clock: Clock) -> None:
    out = StringIO()
    call_command("create_api_token", "bob", stdout=out)
    token = json.loads(out.getvalue())["token"]
    for _ in range(10):
        log_in("bob", "wrong")
    assert log_in("bob", "pw").status_code == 429
    api = Client(REMOTE_ADDR=ADDRESS, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api.get("/api/plugins").status_code == 200


def test_the_live_login_form_says_it_is_throttled(
    live_hub: Any, workspace: Any, clock: Clock
) -> None:
    browser = httpx.Client(base_url=live_hub.url, timeout=10)

    def post(password: str) -> httpx.Response:
        page = browser.get("/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert token, page.text
        return browser.post(
            "/login/",
            data={
                "username": "bob",
                "password": password,
                "csrfmiddlewaretoken": token.group(1),
            },
        )

    for _ in range(4):
        assert post("wrong").status_code == 200
    assert post("wrong").status_code == 429
    refused = post("pw")
    assert refused.status_code == 429
    assert "Too many failed logins for this account" in refused.text
    assert "sessionid" not in browser.cookies
