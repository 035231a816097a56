# proxmox_manager.core: `make demo` and `make test` are all the set-up a fresh machine needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# ansible-core 2.21 needs Python >= 3.12; prefer an explicit interpreter over pyenv shims.
PYTHON ?= $(shell bash scripts/find-python.sh)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements/test.txt requirements/postgresql.txt requirements/constraints.txt | sha1sum | cut -c1-12)
PYTEST := $(BIN)/pytest -p no:pytest-ansible -p no:cacheprovider
export PATH := $(abspath $(BIN)):$(PATH)
export ANSIBLE_CONFIG := $(abspath ansible.cfg)

.PHONY: help venv demo test unit integration installed sanity lint molecule-roles molecule-gitops release-checks bench schemas clean double

help:
	@echo "make demo    - set up .venv, start the Proxmox API double, run the main job against it"
	@echo "make test    - set up .venv and run every test and gate (pytest, sanity, lint, molecule)"
	@echo "make bench   - benchmarks against the double (writes .bench/*.json)"
	@echo "make double  - start the double in the foreground with the sample cluster"

venv: $(STAMP)
$(STAMP): requirements.txt requirements/test.txt requirements/postgresql.txt requirements/constraints.txt
	@test -n "$(PYTHON)" || { echo "Python >= 3.12 not found: set PYTHON=/path/to/python3.12"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
	    -r requirements/test.txt -c requirements/constraints.txt
	@rm -f $(VENV)/.installed-* && touch $@

demo: venv
	@$(BIN)/python scripts/demo.py

double: venv
	$(BIN)/python -m tests.pve_double --scenario tests/pve_double/scenarios/sample.yml --info-file .double/info.json

test: venv unit integration installed sanity lint release-checks molecule-gitops molecule-roles
	@echo "make test: all gates passed"

unit: venv
	$(PYTEST) tests/unit

integration: venv
	$(PYTEST) tests/integration

# The user's route: the tarball, a fresh venv from its requirements.txt, a scaffolded config repo outside the checkout.
installed: venv
	$(PYTEST) tests/installed

sanity: venv
	@bash scripts/sanity.sh

lint: venv
	$(BIN)/yamllint --strict .
	@# Its syntax checks load ansible.cfg's inventory; without PROXMOX_HOST that source must not fail the check.
	ANSIBLE_INVENTORY_UNPARSED_FAILED=false $(BIN)/ansible-lint --offline --profile production

# The checks Galaxy runs on upload (galaxy-importer on the built tarball), the docsite's docs lint and the
# changelog lint. Own venv from requirements/release.txt alone: galaxy-importer needs attrs<24, and
# requirements/constraints.txt pins attrs 26.1.0.
RELEASE_VENV ?= .venv-release
RELEASE_STAMP := $(RELEASE_VENV)/.installed-$(shell sha1sum requirements/release.txt | cut -c1-12)
$(RELEASE_STAMP): requirements/release.txt
	@test -n "$(PYTHON)" || { echo "Python >= 3.12 not found: set PYTHON=/path/to/python3.12"; exit 1; }
	@test -x $(RELEASE_VENV)/bin/python || $(PYTHON) -m venv $(RELEASE_VENV)
	$(RELEASE_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements/release.txt
	@rm -f $(RELEASE_VENV)/.installed-* && touch $@

release-checks: $(RELEASE_STAMP)
	@RELEASE_VENV=$(RELEASE_VENV) bash scripts/release_checks.sh

molecule-gitops: venv
	@VENV=$(VENV) bash tests/molecule/gitops.sh

molecule-roles: venv
	@VENV=$(VENV) bash tests/molecule/run.sh

bench: venv  # BENCH_ARGS="--only inventory|server_role --runs N ..." (python -m tests.bench --help)
	$(BIN)/python -m tests.bench $(BENCH_ARGS)

schemas: venv
	$(BIN)/python scripts/write_schemas.py

clean:
	rm -rf .bench .double tests/output .pytest_cache
