"""Test settings: the real settings, with a private var/ directory and a file
SQLite database that the live server's threads, Celery workers and plugin
processes started by the tests all share."""

import os
import tempfile

os.environ.setdefault("HUB_VAR_DIR", tempfile.mkdtemp(prefix="pluginhub-test-"))
if "HUB_HOSTED_DIR" not in os.environ:
    # Hosted plugins' sandbox user must reach their code: mkdtemp's 0700 would
    # stop it, so this directory is opened up (it holds only uploaded code).
    os.environ["HUB_HOSTED_DIR"] = tempfile.mkdtemp(prefix="pluginhub-hosted-")
    os.chmod(os.environ["HUB_HOSTED_DIR"], 0o755)
# The tests' REST connectors (real SDK servers, the "internal service" of the
# egress tests) listen on loopback: allowed the way an operator would, through
# the environment, so the Celery workers the tests start inherit it too.
os.environ.setdefault("HUB_CONNECTOR_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")
os.environ.setdefault(
    "HUB_TEST_DB", os.path.join(os.environ["HUB_VAR_DIR"], "test.sqlite3")
)

from plugins_app.settings import *  # noqa: E402, F403

ALLOWED_HOSTS = ["*"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Static files straight from the app folders (nothing is collected in tests).
WHITENOISE_USE_FINDERS = True
