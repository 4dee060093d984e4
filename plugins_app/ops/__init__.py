"""Operations: health checks, Prometheus metrics, structured logs, and the
limits on failed authentication and idle connections.

Endpoints (``plugins_app/ops/urls.py``, mounted at the site root):

* ``GET /healthz`` -- JSON ``{"status": "ok"|"fail", "checks": {...}}`` for the
  database, the channel layer and the Celery broker; 200 when all pass, else 503.
  Open to anyone: it reveals no data.
* ``GET /metrics`` -- Prometheus text built from the database on every scrape.

Modules:

* ``metrics`` -- ``/metrics``: ``HUB_METRICS_TOKEN`` as a bearer token (401
  without it, 403 with a wrong one); without a token (embedded mode or DEBUG
  only: a production hub refuses to start) loopback clients only.
* ``window`` -- failure counters in clock-aligned windows in Django's cache.
* ``auth_guard`` -- failed plugin heartbeats per (IP, plugin id):
  ``HUB_AUTH_FAILURES_PER_WINDOW`` (10) per ``HUB_AUTH_WINDOW_SECONDS`` (300),
  then no longer recorded; one alert to ``HUB_ADMINS`` (by mail through
  ``EMAIL_HOST``/``EMAIL_PORT``/``SERVER_EMAIL``/``EMAIL_TIMEOUT``) or the log.
  The right secret always authenticates.
* ``login_throttle`` -- failed password logins per account and per address.
* ``http_protocol`` -- uvicorn's httptools protocol with a deadline and a size
  limit for request heads (slowloris).
* ``isolation`` -- one plugin's error in periodic work is logged, not fatal.
* ``logging`` -- ``HUB_LOG_FORMAT=json`` writes one JSON object per line.

docs/security-auth.md and docs/deployment.md describe them for admins. The
counters live in Django's cache: Redis (``REDIS_URL``) when set, so every process
shares them, else an in-process ``LocMemCache``.
"""
