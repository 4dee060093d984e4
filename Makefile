# Plugin Hub. `make run` starts everything with demo data; `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
SDK13 := .venv-sdk13
SDK14 := .venv-sdk14
PY := $(VENV)/bin/python

.PHONY: run test check docs docs-build lint typecheck format bench bench-fleet venvs clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -U pip
	$(VENV)/bin/pip install -q -r requirements-dev.txt
	touch $@

# Plugin environments: the real imerit-ango SDK, 1.3.22 (what the public samples
# pin) and the latest 1.4.x, each with the example plugins' requirements.
$(SDK13)/.installed: examples/requirements.txt
	$(PYTHON) -m venv $(SDK13)
	$(SDK13)/bin/pip install -q -r examples/requirements.txt "imerit-ango==1.3.22"
	touch $@

$(SDK14)/.installed: examples/requirements.txt
	$(PYTHON) -m venv $(SDK14)
	$(SDK14)/bin/pip install -q -r examples/requirements.txt "imerit-ango>=1.4,<1.5"
	touch $@

venvs: $(VENV)/.installed $(SDK13)/.installed $(SDK14)/.installed

# The demo runs plugin scripts on this machine: a REST connector started here
# listens on 127.0.0.1, which the hub refuses unless allowed (docs/security-egress.md).
# An operator's own HUB_CONNECTOR_ALLOWED_NETWORKS wins.
run: export HUB_CONNECTOR_ALLOWED_NETWORKS ?= 127.0.0.0/8,::1/128
run: $(VENV)/.installed $(SDK14)/.installed
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v0
	$(PY) manage.py seed_demo > /dev/null
	$(PY) manage.py runhub

# The docs site (mkdocs-material): `make docs` serves it on :8001; the build is
# --strict, so a broken link fails `make test`.
docs-build: $(VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build -q --strict

docs: $(VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve -a 127.0.0.1:8001

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

# mypy with django-stubs; its settings are in pyproject.toml ([tool.mypy]).
typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy plugins_app

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: venvs lint typecheck docs-build
	$(PY) -m pytest --durations=25

# The fast lane for day-to-day work: lint, then every test that needs no browser,
# no plugin process, no production stack and is not marked slow. CI runs `test`.
check: $(VENV)/.installed lint typecheck
	$(PY) -m pytest -q -x -m "not browser and not sdk and not production and not slow"

bench: venvs
	$(PY) bench/relay.py
	$(PY) bench/logs.py
	$(PY) bench/batch_model.py
	$(PY) bench/export.py

# Production mode: needs PostgreSQL on 127.0.0.1:5432 and Redis on :6379.
bench-fleet: venvs
	$(PY) bench/fleet.py

clean:
	rm -rf var/ .pytest_cache
