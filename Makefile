# Developer and CI entry points. The service logic lives in tools/stack/.
#   make run                        migrate, seed demo data, start web + worker + beat
#                                   (installs requirements.txt only: what running needs)
#   make manage ARGS='…'            manage.py against the running `make run` (its database,
#                                   broker and secret key)
#   make test PYTEST_ARGS='-x -q'   the full gate (CI): every test but soak, against ready PostgreSQL/Redis
#   make test-fast                  the edit-test loop (< 2 min on 2 cores): leaves out the tiers
#                                   slow, worker, browser, labelstudio, faults (and soak); no Chromium
#   make data                       fetch Toxic Spans + ConvAbuse into REVIEWAPP_DATA_DIR, check sha256
#   make audit                      known vulnerabilities in the pinned requirements (pip-audit)
#   make soak                       minutes of repeated PostgreSQL/Redis restarts under load
#   make stop / make clean          stop `make run` (web, worker, beat) and the project-local
#                                   servers / also delete .run/
# Every target but run, manage, stop and clean also installs requirements-dev.txt (test and lint tools).

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
RUNTIME_STAMP := $(VENV)/.installed-runtime
DEV_STAMP := $(VENV)/.installed-dev
BOOTSTRAP_PYTHON := $(shell command -v python3.11 || command -v python3)

.PHONY: venv venv-dev run manage test test-fast data soak lint audit stop clean system-deps bench

# Two stamps: `venv` holds what running the application needs, `venv-dev` adds the test, lint
# and benchmark tools. Each reinstalls only when its requirements changed since it last succeeded.
venv: $(RUNTIME_STAMP)
venv-dev: $(DEV_STAMP)

# --no-compile: pip would byte-compile all ~19,000 modules of the requirements (minutes on two
# busy cores); Python compiles the few thousand a process imports on first use instead.
$(RUNTIME_STAMP): requirements.txt
	test -x $(PY) || $(BOOTSTRAP_PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install --no-compile -r requirements.txt
	touch $(RUNTIME_STAMP)

$(DEV_STAMP): $(RUNTIME_STAMP) requirements-dev.txt
	$(PY) -m pip install -r requirements.txt -r requirements-dev.txt
	touch $(DEV_STAMP)

run: venv
	$(PY) -m tools.stack run

# manage.py with the environment of the running `make run`, e.g.
#   make manage ARGS='create_service_token --name bot --scope items:read'
manage: venv
	$(PY) -m tools.stack manage $(ARGS)

test: venv-dev system-deps
	$(PY) -m tools.stack test $(PYTEST_ARGS)

# Test tiers are pytest markers (pyproject.toml): browser, labelstudio and faults by folder
# (tests/conftest.py), worker and slow marked in the test files. No cache provider: nothing is
# written into the tree, and a run never depends on an earlier one. Locally, PYTEST_ARGS=--reuse-db
# keeps the test database between runs (never on CI: a stale schema would hide a migration bug).
FAST_TIERS := not (slow or worker or browser or labelstudio or faults or soak)
test-fast: venv-dev
	$(PY) -m tools.stack test -m "$(FAST_TIERS)" -p no:cacheprovider -q $(PYTEST_ARGS)

# The public datasets, from their upstream repositories, into REVIEWAPP_DATA_DIR (default
# ../shared/data when it exists, else .data/); refuses any file whose sha256 is not the pinned one.
# Standard library only, so it needs no virtualenv.
data:
	$(BOOTSTRAP_PYTHON) -m tools.data

# Fault tests that take minutes: repeated restarts of private PostgreSQL/Redis servers under
# load (tests/faults). Each prints one summary line of what it verified.
soak: venv-dev
	$(PY) -m tools.stack test -m soak -p no:cacheprovider -q -s tests/faults $(PYTEST_ARGS)

# Benchmarks print their figures; each works in its own database on the same server.
bench: venv-dev
	eval "$$($(PY) -m tools.stack services)" && for script in bench/*.py; do \
		case "$$script" in bench/_*) continue;; esac; \
		echo "== $$script"; $(PY) "$$script" || exit 1; done

# ruff (lint and format) and the layer contracts in pyproject.toml ([tool.importlinter]).
lint: venv-dev
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/lint-imports

# Known vulnerabilities in the pinned requirements and everything they pull in, from PyPI's
# vulnerability feed. --strict: a package the feed gives no answer for (feed unreachable, or
# the package unknown to it) fails the audit; it never passes silently. A vulnerability that
# cannot be fixed yet is ignored here with `--ignore-vuln ID` and a comment saying why.
AUDIT_FEED_PROBE := https://pypi.org/pypi/pip/24.0/json
# CI sets AUDIT_UNREACHABLE=warn: a network without the feed (a registry mirror serves packages,
# not advisories) then gets a loud warning instead of a red build; found vulnerabilities still fail.
AUDIT_UNREACHABLE ?= fail
audit: venv-dev
	@if ! $(PY) -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=15)" \
		$(AUDIT_FEED_PROBE) 2>/dev/null; then \
		echo "audit: PyPI's vulnerability feed does not answer ($(AUDIT_FEED_PROBE)): NOTHING WAS AUDITED" >&2; \
		if [ "$(AUDIT_UNREACHABLE)" = warn ]; then exit 0; else exit 1; fi; \
	fi; \
	$(VENV)/bin/pip-audit --strict --progress-spinner off -r requirements.txt -r requirements-dev.txt

# Chromium for the browser tests (Debian packages). Needs root; otherwise only says so.
system-deps:
	@if [ -x /usr/bin/chromium ]; then \
		true; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver; \
	else \
		echo "system-deps: /usr/bin/chromium is missing and this is not root;" \
			"install it with: sudo apt-get install -y chromium chromium-driver" \
			"(browser tests cannot run without it)"; \
	fi

# Stops `make run` (which stops web, worker and beat and the servers it started) and then any
# project-local server still running. tools/stack needs only the standard library and sits
# outside the Django apps, so stop works without the venv too.
stop:
	@if [ -x $(PY) ]; then $(PY) -m tools.stack stop; \
	else $(BOOTSTRAP_PYTHON) -m tools.stack stop; fi

clean: stop
	@if [ -L .run/pg ]; then rm -rf "$$(readlink .run/pg)"; fi
	rm -rf .run
