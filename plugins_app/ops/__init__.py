"""Operations: health checks, Prometheus metrics, structured logs, and the guard
against heartbeat brute force.

Endpoints (``plugins_app/ops/urls.py``, mounted at the site root):

* ``GET /healthz`` -- JSON ``{"status": "ok"|"fail", "checks": {...}}`` for the
  database, the channel layer and the Celery broker; 200 when all pass, else 503.
  Open to anyone: it reveals no data.
* ``GET /metrics`` -- Prometheus text built from the database on every scrape.

Settings (environment variables):

* ``HUB_METRICS_TOKEN`` (unset): when set, ``/metrics`` needs
  ``Authorization: Bearer <token>``; 401 without it, 403 with a wrong one.
* ``HUB_LOG_FORMAT`` (``plain``): ``json`` writes one JSON object per line with
  time, level, logger, message, the ``extra`` fields and the exception text.
* ``HUB_AUTH_FAILURES_PER_WINDOW`` (10): failed heartbeats one IP may make in a
  window; after that its heartbeats are refused until the window ends.
* ``HUB_AUTH_WINDOW_SECONDS`` (300): that window (fixed, aligned to the clock).
* ``HUB_ADMINS`` (empty): comma-separated addresses mailed when an IP is
  blocked; empty means the warning is only logged.
* ``EMAIL_HOST`` (``localhost``), ``EMAIL_PORT`` (25), ``SERVER_EMAIL``
  (``root@localhost``), ``EMAIL_TIMEOUT`` (10 s): how that mail is sent.

The failure counters live in Django's cache: Redis (``REDIS_URL``) when set, so
every ASGI process shares them, else an in-process ``LocMemCache``.
"""
