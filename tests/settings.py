"""Test settings: the real settings, with a private var/ directory and a file
SQLite database that the live server's threads, Celery workers and plugin
processes started by the tests all share."""

import os
import tempfile

os.environ.setdefault("HUB_VAR_DIR", tempfile.mkdtemp(prefix="pluginhub-test-"))
os.environ.setdefault(
    "HUB_TEST_DB", os.path.join(os.environ["HUB_VAR_DIR"], "test.sqlite3")
)

from plugins_app.settings import *  # noqa: E402, F403

ALLOWED_HOSTS = ["*"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Static files straight from the app folders (nothing is collected in tests).
WHITENOISE_USE_FINDERS = True
