"""No tenant-supplied URL reaches an internal address (issue 9, section 2).

An organization admin registers a REST connector URL and the hub's processes
call it. These tests play the attacker against the real app: a real HTTP server
on 127.0.0.1 stands for the internal service, the registration goes through the
plugin dialog (and the JSON API), the calls through the same service functions
the Celery tasks run, and every page, API field and log line the admin can read
is searched for what the internal service answered."""

from __future__ import annotations

import json
import logging
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, override_settings

from plugins_app.ops import egress
from plugins_app.plugins.models import Delivery, FailedHeartbeat, Plugin
from plugins_app.runs.dispatch import dispatch_pending
from plugins_app.runs.dispatch.rest import connector_deliver, connector_probe
from plugins_app.runs.models import Run, RunLogLine, WorkItem
from tests.hub import free_port
from tests.test_rest_connector import member, rest_plugin

# What the internal service says: it must never be shown to the tenant.
MARKER = "INTERNAL-SECRET-7f3a9c"
NO_NETWORKS = override_settings(HUB_CONNECTOR_ALLOWED_NETWORKS=[])


# --- the internal service -------------------------------------------------------
Answer = tuple[int, bytes, dict[str, str]]
# A fixed answer, or one computed from the request's body.
Route = Answer | Callable[[bytes], Answer]


@dataclass
class InternalService:
    """A real HTTP server on 127.0.0.1 that counts every connection it accepts
    and answers each path as told (status, body, extra headers)."""

    routes: dict[str, Route] = field(default_factory=dict)
    connections: int = 0
    paths: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer(self, path: str, status: int, body: bytes | str, **headers: str) -> None:
        raw = body.encode() if isinstance(body, str) else body
        self.routes[path] = (status, raw, headers)


@pytest.fixture
def internal() -> Iterator[InternalService]:
    yield from serve(InternalService())


def serve(
    service: InternalService, tls: ssl.SSLContext | None = None
) -> Iterator[InternalService]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            service.paths.append(self.path)
            service.hosts.append(self.headers.get("Host", ""))
            length = int(self.headers.get("Content-Length") or 0)
            request_body = self.rfile.read(length)
            route = service.routes.get(
                self.path, (404, f"{MARKER} no route".encode(), {})
            )
            status, body, headers = route(request_body) if callable(route) else route
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args: Any) -> None:
            pass

    class CountingServer(ThreadingHTTPServer):
        def verify_request(self, request: Any, client_address: Any) -> bool:
            service.connections += 1
            return True

    service.server = CountingServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        service.server.socket = tls.wrap_socket(service.server.socket, server_side=True)
    thread = threading.Thread(target=service.server.serve_forever, daemon=True)
    thread.start()
    yield service
    service.server.shutdown()
    service.server.server_close()


# --- helpers --------------------------------------------------------------------
def admin(workspace: Any) -> Client:
    client = Client()
    client.force_login(workspace.admin)
    return client


def register(workspace: Any, url: str) -> tuple[Any, Plugin | None]:
    """The Register-a-plugin dialog, as the admin's browser posts it."""
    name = f"REST {url}"[:200]
    response = admin(workspace).post(
        "/plugins/new/",
        {
            "name": name,
            "type": "model",
            "delivery": "rest",
            "connector_url": url,
            "class_names_text": "face",
            "default_config": "{}",
            "timeout_seconds": 30,
            "concurrency": 1,
            "projects": [workspace.project.pk],
        },
        HTTP_HX_REQUEST="true",
    )
    return response, Plugin.objects.filter(name=name).first()


def run_once(workspace: Any, plugin: Plugin) -> Run:
    """A run of one asset, delivered by the very function the Celery task
    runs (deliver_connector_job → connector_deliver), in this process."""
    response = member(workspace).post(
        f"/projects/{workspace.project.pk}/plugins/{plugin.pk}/run/",
        {"external_ids": "astronaut", "config_json": "{}", "map_0": "face-box"},
        HTTP_HX_REQUEST="true",
    )
    assert "HX-Redirect" in response, response.content.decode()
    run = Run.objects.get(plugin=plugin)
    for _ in range(plugin.max_attempts):
        dispatch_pending(plugin.pk)
        leased = run.items.filter(state=WorkItem.State.LEASED).first()
        if leased is None:
            break
        connector_deliver(leased.pk)
    run.refresh_from_db()
    return run


def everything_the_tenant_reads(workspace: Any, plugin: Plugin) -> str:
    """Pages, API answers and stored texts an admin or member of the plugin's
    organization can read about this plugin and its runs."""
    client = admin(workspace)
    texts = [
        client.get(f"/plugins/{plugin.pk}/").content.decode(),
        client.get("/plugins/").content.decode(),
        client.get(f"/api/plugins/{plugin.pk}").content.decode(),
        client.get("/api/plugins").content.decode(),
    ]
    for run in Run.objects.filter(plugin=plugin):
        texts += [
            client.get(f"/runs/{run.pk}/").content.decode(),
            client.get(f"/api/runs/{run.pk}").content.decode(),
            client.get(f"/api/runs/{run.pk}/logs").content.decode(),
            run.error,
        ]
        texts += RunLogLine.objects.filter(run=run).values_list("message", flat=True)
    texts += FailedHeartbeat.objects.filter(plugin=plugin).values_list(
        "reason", flat=True
    )
    return "\n".join(texts)


def fake_dns(
    monkeypatch: Any,
    answers: dict[str, list[str]],
    then: dict[str, list[str]] | None = None,
) -> list[str]:
    """Replace the egress module's resolver (socket.getaddrinfo) for the names
    in `answers` (the test may change the dict to change the answer; `then`
    replaces a name's answer right after its first one). Returns the names
    asked, in order."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in answers:
            return real(host, port, *args, **kwargs)
        asked.append(host)
        addresses = answers[host]
        if then and host in then:
            answers[host] = then.pop(host)
        return [
            (
                socket.AF_INET6 if ":" in a else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (a, int(port), 0, 0) if ":" in a else (a, int(port)),
            )
            for a in addresses
        ]

    monkeypatch.setattr(egress.socket, "getaddrinfo", getaddrinfo)
    return asked


# --- the address policy -----------------------------------------------------------
INTERNAL_HOSTS = [
    "127.0.0.1",
    "127.1",  # short form
    "2130706433",  # 127.0.0.1 as one number
    "0x7f.1",  # hex
    "0177.0.0.1",  # octal
    "[::1]",
    "[::ffff:127.0.0.1]",  # IPv4-mapped IPv6
    "[::ffff:7f00:1]",
    "[::127.0.0.1]",  # IPv4-compatible (deprecated)
    "localhost",
    "0.0.0.0",
    "[::]",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "100.64.0.1",  # carrier-grade NAT
    "169.254.169.254",  # AWS / GCP / Azure metadata
    "169.254.170.2",  # ECS task metadata
    "[fd00:ec2::254]",  # AWS metadata over IPv6
    "100.100.100.200",  # Alibaba metadata
    "168.63.129.16",  # Azure wire server (a "public" address)
    "[fe80::1]",
    "[fc00::1]",
    "[fd12:3456::1]",
    "224.0.0.1",
    "[ff02::1]",
    "240.0.0.1",
    "255.255.255.255",
    "[64:ff9b::a00:1]",  # NAT64 of 10.0.0.1
    "[2002:7f00:1::]",  # 6to4 of 127.0.0.1
    "198.18.0.1",
]


@NO_NETWORKS
@pytest.mark.parametrize("host", INTERNAL_HOSTS)
def test_it_refuses_every_spelling_of_an_internal_address(host: str) -> None:
    url = f"http://{host}:8080"

    assert egress.registration_problem(url) == egress.REFUSED_INTERNAL
    with pytest.raises(egress.Refused):
        egress.fetch(url, timeout=1, max_bytes=10)


@NO_NETWORKS
@pytest.mark.parametrize("address", ["93.184.216.34", "2606:4700:4700::1111"])
def test_it_lets_public_addresses_through(address: str) -> None:
    assert egress.address_problem(egress.ipaddress.ip_address(address)) is None


@override_settings(HUB_CONNECTOR_ALLOWED_NETWORKS=["127.0.0.0/8", "10.20.0.0/16"])
def test_allowed_networks_open_their_addresses_only() -> None:
    ok = egress.registration_problem
    assert ok("http://127.0.0.1:8080") is None
    assert ok("http://[::ffff:127.0.0.1]:8080") is None  # the same address
    assert ok("http://10.20.3.4") is None
    assert ok("http://10.21.0.1") == egress.REFUSED_INTERNAL
    assert ok("http://192.168.1.1") == egress.REFUSED_INTERNAL


@override_settings(HUB_CONNECTOR_ALLOWED_NETWORKS=["0.0.0.0/0", "::/0"])
def test_metadata_addresses_stay_refused_whatever_is_allowed() -> None:
    for host in ("169.254.169.254", "[fd00:ec2::254]", "168.63.129.16"):
        assert egress.registration_problem(f"http://{host}") is not None


@pytest.mark.parametrize(
    "value",
    ["nonsense", "10.0.0.0/33", "10.0.0.1/8", "127.0.0.0/8,,300.1.1.1"],
)
def test_a_bad_allowed_networks_setting_stops_the_hub_clearly(
    value: str, monkeypatch: Any
) -> None:
    from plugins_app.settings import envnetworks

    monkeypatch.setenv("HUB_CONNECTOR_ALLOWED_NETWORKS", value)
    with pytest.raises(ImproperlyConfigured, match="HUB_CONNECTOR_ALLOWED_NETWORKS"):
        envnetworks("HUB_CONNECTOR_ALLOWED_NETWORKS")
    monkeypatch.setenv("HUB_CONNECTOR_ALLOWED_NETWORKS", " 10.0.0.0/8, fd12::/16 ")
    assert envnetworks("HUB_CONNECTOR_ALLOWED_NETWORKS") == ["10.0.0.0/8", "fd12::/16"]


# --- registration -----------------------------------------------------------------
@pytest.mark.django_db
def test_a_loopback_connector_is_refused_at_registration_unless_allowed(
    workspace: Any, internal: InternalService
) -> None:
    with NO_NETWORKS:
        refused, plugin = register(workspace, internal.url)
    with override_settings(HUB_CONNECTOR_ALLOWED_NETWORKS=["127.0.0.0/8"]):
        allowed, allowed_plugin = register(workspace, internal.url + "/")

    assert refused.status_code == 200 and plugin is None
    assert "points at an internal address" in refused.content.decode()
    assert "HUB_CONNECTOR_ALLOWED_NETWORKS" in refused.content.decode()
    assert allowed_plugin is not None and allowed_plugin.delivery == Delivery.REST
    assert "CONNECTOR=REST" in allowed.content.decode()
    assert internal.connections == 0  # registering calls nothing


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:{port}/anything#", "fragment (#)"),
        ("http://127.0.0.1:{port}/x#y", "fragment (#)"),
        ("http://127.0.0.1:{port}/x?", "query (?)"),
        ("http://admin:pw@127.0.0.1:{port}", "user name or password"),
        ("http://admin@127.0.0.1:{port}", "user name or password"),
        ("ftp://127.0.0.1:{port}", "http(s)"),
    ],
)
def test_fragments_userinfo_and_other_schemes_are_refused_at_registration(
    url: str, why: str, workspace: Any, internal: InternalService
) -> None:
    # 127.0.0.1 is allowed in the tests: only the URL's form is at fault.
    response, plugin = register(workspace, url.format(port=internal.port))

    assert plugin is None, url
    page = response.content.decode()
    assert why in page.replace("&#x27;", "'").replace("&amp;", "&"), page


@pytest.mark.django_db
def test_editing_a_plugin_to_an_internal_url_is_refused(workspace: Any) -> None:
    plugin, _ = rest_plugin(workspace, "https://model.example.run")
    with NO_NETWORKS:
        response = admin(workspace).post(
            f"/plugins/{plugin.pk}/edit/",
            {
                "name": plugin.name,
                "type": "model",
                "delivery": "rest",
                "connector_url": "http://169.254.169.254/latest/meta-data#",
                "class_names_text": "face",
                "default_config": "{}",
                "timeout_seconds": 30,
                "concurrency": 1,
            },
            HTTP_HX_REQUEST="true",
        )

    plugin.refresh_from_db()
    assert plugin.connector_url == "https://model.example.run"
    assert "must not have a query (?) or fragment (#)" in response.content.decode()


@pytest.mark.django_db
def test_the_json_api_refuses_an_internal_connector_url(workspace: Any) -> None:
    body = {
        "name": "API REST",
        "type": "model",
        "class_names": ["face"],
        "delivery": "rest",
        "connector_url": "http://10.0.0.5:8080",
    }
    client = admin(workspace)
    with NO_NETWORKS:
        created = client.post("/api/plugins", body, content_type="application/json")
        fine = client.post(
            "/api/plugins",
            {**body, "connector_url": "https://model.example.run"},
            content_type="application/json",
        )
        plugin_id = fine.json()["id"]
        patched = client.patch(
            f"/api/plugins/{plugin_id}",
            {"connector_url": "http://[::ffff:10.0.0.5]:8080"},
            content_type="application/json",
        )

    assert created.status_code == 400, created.content
    assert "internal address" in created.json()["errors"]["connector_url"][0]
    assert fine.status_code == 201
    assert fine.json()["connector_url"] == "https://model.example.run"
    assert patched.status_code == 400, patched.content
    assert "internal address" in json.dumps(patched.json())
    assert Plugin.objects.get(pk=plugin_id).connector_url == (
        "https://model.example.run"
    )
    assert not Plugin.objects.filter(name="API REST", connector_url__contains="10.")


# --- every call -------------------------------------------------------------------
@pytest.mark.django_db
def test_a_name_rebound_to_an_internal_address_after_registration_is_never_called(
    workspace: Any, internal: InternalService, monkeypatch: Any
) -> None:
    internal.answer("/heartbeat", 200, '"ok"')
    # Public when the admin registers it, loopback ever after (DNS rebinding).
    dns = {"rebind.example": ["93.184.216.34"]}
    asked = fake_dns(monkeypatch, dns)
    with NO_NETWORKS:
        _, plugin = register(workspace, f"http://rebind.example:{internal.port}")
        assert plugin is not None
        registered = len(asked)
        dns["rebind.example"] = ["127.0.0.1"]
        probed = connector_probe(plugin.pk)
        run = run_once(workspace, plugin)

    assert registered >= 1 and len(asked) >= registered + 2  # probe and job
    assert not probed
    assert internal.connections == 0
    assert run.status == Run.Status.FAILED
    assert "does not call" in run.error and "internal address" in run.error
    assert run.items.get().attempts == 1  # refused outright, not retried
    [failure] = FailedHeartbeat.objects.filter(plugin=plugin)
    assert failure.reason.endswith(egress.REFUSED_INTERNAL)  # not cut short


@pytest.mark.django_db
def test_the_call_goes_to_the_very_address_that_was_checked(
    workspace: Any, internal: InternalService, monkeypatch: Any
) -> None:
    """No second lookup between the check and the connection: the name answers
    an allowed address (127.0.0.2, where nothing listens) once, the internal
    service's address right after; the call must go to the first."""
    internal.answer("/heartbeat", 200, '"ok"')
    plugin, _ = rest_plugin(workspace, "https://model.example.run")
    Plugin.objects.filter(pk=plugin.pk).update(
        connector_url=f"http://pinned.example:{internal.port}"
    )
    asked = fake_dns(
        monkeypatch,
        {"pinned.example": ["127.0.0.2"]},
        then={"pinned.example": ["127.0.0.1"]},
    )

    with override_settings(HUB_CONNECTOR_ALLOWED_NETWORKS=["127.0.0.2/32"]):
        probed = connector_probe(plugin.pk)

    assert asked == ["pinned.example"]  # resolved once
    assert not probed and internal.connections == 0
    [failure] = FailedHeartbeat.objects.filter(plugin=plugin)
    assert failure.reason == "heartbeat probe failed: unreachable"


@pytest.mark.django_db
def test_one_internal_address_among_several_refuses_the_call(
    workspace: Any, internal: InternalService, monkeypatch: Any
) -> None:
    internal.answer("/heartbeat", 200, '"ok"')
    plugin, _ = rest_plugin(workspace, "https://model.example.run")
    Plugin.objects.filter(pk=plugin.pk).update(
        connector_url=f"http://mixed.example:{internal.port}"
    )
    fake_dns(monkeypatch, {"mixed.example": ["93.184.216.34", "127.0.0.1"]})

    with NO_NETWORKS:
        assert not connector_probe(plugin.pk)

    assert internal.connections == 0


@pytest.mark.django_db
def test_a_url_stored_before_the_policy_is_checked_at_every_call(
    workspace: Any, internal: InternalService
) -> None:
    internal.answer("/heartbeat", 200, '"ok"')
    plugin, _ = rest_plugin(workspace, internal.url)  # allowed then
    with NO_NETWORKS:
        assert not connector_probe(plugin.pk)
    assert internal.connections == 0
    assert connector_probe(plugin.pk)  # allowed again: the same URL works
    assert internal.connections == 1


@pytest.mark.django_db
def test_a_redirect_is_not_followed(workspace: Any, internal: InternalService) -> None:
    target = internal.url + "/latest/meta-data"
    internal.answer("/plugin", 302, MARKER, Location=target)
    internal.answer("/heartbeat", 307, MARKER, Location=target)
    plugin, _ = rest_plugin(workspace, internal.url)

    probed = connector_probe(plugin.pk)
    run = run_once(workspace, plugin)

    assert not probed
    assert internal.paths == ["/heartbeat", "/plugin"]  # nothing after the 3xx
    assert run.status == Run.Status.FAILED
    assert "HTTP 302 (redirects are not followed)" in run.error
    [failure] = FailedHeartbeat.objects.filter(plugin=plugin)
    assert failure.reason.endswith("HTTP 307 (redirects are not followed)")
    assert MARKER not in everything_the_tenant_reads(workspace, plugin)


def test_a_non_ascii_path_is_sent_percent_encoded(internal: InternalService) -> None:
    internal.answer("/mod%C3%A8le/heartbeat", 200, '"ok"')

    answer = egress.fetch(internal.url + "/modèle/heartbeat", timeout=5, max_bytes=100)

    assert (answer.status, answer.body) == (200, b'"ok"')
    assert internal.paths == ["/mod%C3%A8le/heartbeat"]


@pytest.mark.django_db
def test_https_checks_the_certificate_for_the_name_not_the_address(
    workspace: Any, monkeypatch: Any, tmp_path: Any
) -> None:
    """Connected to the checked address, TLS still sends the name (SNI), the
    request still says Host: <name>, and the certificate must be the name's."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=model.example"]
        + ["-addext", "subjectAltName=DNS:model.example"],
        check=True,
        capture_output=True,
    )
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    names: list[str | None] = []
    tls.sni_callback = lambda sock, name, context: names.append(name)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the hub trusts this one
    fake_dns(
        monkeypatch,
        {"model.example": ["127.0.0.1"], "impostor.example": ["127.0.0.1"]},
    )
    server = serve(InternalService(), tls)
    service = next(server)
    service.answer("/heartbeat", 200, '"ok"')
    good, _ = rest_plugin(workspace, f"https://model.example:{service.port}")
    bad, _ = rest_plugin(
        workspace, f"https://impostor.example:{service.port}", name="impostor"
    )
    try:
        assert connector_probe(good.pk)
        assert not connector_probe(bad.pk)
    finally:
        next(server, None)

    assert names == ["model.example", "impostor.example"]
    assert service.hosts == [f"model.example:{service.port}"]
    [failure] = FailedHeartbeat.objects.filter(plugin=bad)
    assert failure.reason == (
        "heartbeat probe failed: TLS certificate not valid for the host"
    )


# What an internal service might answer a probe or a job with.
ANSWERS = [
    (200, f"<html>{MARKER}</html>", "not JSON"),
    (200, json.dumps({"config": MARKER}), "HTTP 200"),
    (200, json.dumps({"response": {"objects": [{"x": MARKER}]}}), "HTTP 200"),
    (200, json.dumps(MARKER), "HTTP 200"),
    (404, json.dumps({"detail": MARKER}), "HTTP 404"),
    (403, MARKER, "HTTP 403"),
    (418, MARKER, "HTTP 418"),
    (503, MARKER, "HTTP 503"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("status", "body", "said"), ANSWERS)
def test_an_internal_reply_body_is_never_shown(
    status: int,
    body: str,
    said: str,
    workspace: Any,
    internal: InternalService,
    caplog: Any,
) -> None:
    caplog.set_level(logging.DEBUG)
    internal.answer("/plugin", status, body, **{"Content-Type": "application/json"})
    internal.answer("/heartbeat", status, body)
    plugin, _ = rest_plugin(workspace, internal.url)

    probed = connector_probe(plugin.pk)
    run = run_once(workspace, plugin)

    assert not probed
    assert run.status == Run.Status.FAILED
    assert said in run.error
    assert internal.connections >= 2  # it was reached, and it answered
    seen = everything_the_tenant_reads(workspace, plugin)
    assert said in seen
    assert MARKER not in seen
    assert MARKER not in caplog.text


@pytest.mark.django_db
def test_refused_closed_and_silent_ports_read_the_same(workspace: Any) -> None:
    """Nothing tells a closed port from one that accepts and hangs up."""
    hangs_up = socket.socket()
    hangs_up.bind(("127.0.0.1", 0))
    hangs_up.listen()
    stop = threading.Event()

    def accept_and_close() -> None:
        hangs_up.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = hangs_up.accept()
            except OSError:
                continue
            conn.close()

    thread = threading.Thread(target=accept_and_close, daemon=True)
    thread.start()
    closed, _ = rest_plugin(workspace, f"http://127.0.0.1:{free_port()}", name="a")
    open_, _ = rest_plugin(
        workspace, f"http://127.0.0.1:{hangs_up.getsockname()[1]}", name="b"
    )
    unresolvable, _ = rest_plugin(workspace, "http://no-such-host.invalid", name="c")
    try:
        for plugin in (closed, open_, unresolvable):
            assert not connector_probe(plugin.pk)
    finally:
        stop.set()
        thread.join()
        hangs_up.close()

    reasons = {
        f.reason for f in FailedHeartbeat.objects.filter(plugin__in=[closed, open_])
    }
    assert reasons == {"heartbeat probe failed: unreachable"}
    assert FailedHeartbeat.objects.get(plugin=unresolvable).reason == (
        "heartbeat probe failed: unreachable"
    )


@pytest.mark.django_db
def test_a_name_turning_internal_during_registration_is_a_form_error(
    workspace: Any, monkeypatch: Any
) -> None:
    """The dialog's check and plugin_create's each resolve: if the answer
    changes in between, the admin gets the form back, not a 500."""
    asked = fake_dns(
        monkeypatch,
        {"flip.example": ["93.184.216.34"]},
        then={"flip.example": ["10.0.0.1"]},
    )
    with NO_NETWORKS:
        response, plugin = register(workspace, "https://flip.example")

    assert asked == ["flip.example", "flip.example"]
    assert response.status_code == 200 and plugin is None
    assert "internal address" in response.content.decode()


@pytest.mark.django_db
def test_a_real_plugin_answer_still_applies(
    workspace: Any, internal: InternalService
) -> None:
    """An answer must now carry the job's session, as the SDK's always do:
    one that does is applied as before."""

    def plugin(body: bytes) -> Answer:
        answer = {
            "response": {"objects": [], "classifications": [], "relations": []},
            "session": json.loads(body)["session"],
        }
        return 200, json.dumps(answer).encode(), {}

    internal.routes["/plugin"] = plugin
    registered, _ = rest_plugin(workspace, internal.url)

    run = run_once(workspace, registered)

    assert run.status == Run.Status.SUCCEEDED, run.error
    assert internal.paths == ["/plugin"]
