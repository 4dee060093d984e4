"""Django's PostgreSQL backend with a health check that costs no round trip
(`base.DatabaseWrapper`); settings.py names it as the ENGINE of a PostgreSQL
DATABASE_URL."""
