# fleet.rollout: every target runs `setup` first, so a fresh clone needs no step of its own.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
COLLECTIONS := $(CURDIR)/.tmp/collections
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
# What ansible-core and ansible-lint keep in ~/.ansible (temp files, galaxy's cache, lint's mocks) stays in
# the checkout: a test run leaves nothing outside it. (ansible-test: see tools/sanity.sh.)
export ANSIBLE_HOME := $(CURDIR)/.tmp/ansible-home
export PATH := $(VENV)/bin:$(PATH)
PYTEST_ARGS ?=

.PHONY: molecule help setup lint ruff mypy yamllint ansible-lint sanity build unit integration chaos test demo lab-down bench clean

help:
	@echo "make demo   bring up a 10-host lab with traffic (see README), then take it down"
	@echo "make test   setup, lint, unit and integration tests (what CI runs)"
	@echo "make lint   ruff, mypy, yamllint, ansible-lint, ansible-test sanity"
	@echo "make chaos  every seeded fault trial of tests/chaos, then a summary table (make test runs a few)"
	@echo "make setup  Debian packages for the lab and the pinned .venv (every target runs it)"
	@echo "make molecule  molecule test of the deploy role (extensions/molecule/deploy) on its own lab"

setup:
	@tools/setup.sh

lint: setup ruff mypy yamllint ansible-lint sanity

ruff: setup
	ruff check .
	ruff format --check .

mypy: setup
	mypy lab tests $(wildcard bench/*.py)
	@# Collections have no __init__.py in plugins/, so name every plugin file as a module.
	mypy $(patsubst %.py,-m ansible_collections.fleet.rollout.%,$(subst /,.,$(wildcard plugins/*/*.py)))

yamllint: setup
	yamllint --strict .

# --offline: without it, ansible-lint installs a built copy of this collection into its cache (which,
# with ANSIBLE_COLLECTIONS_PATH set, is ~/.ansible/collections unless ANSIBLE_HOME says otherwise) and
# lints that copy; the checkout is fleet.rollout already, through .tmp/collections.
ansible-lint: setup
	ansible-lint --offline --profile production

build: setup
	@rm -rf .tmp/build && mkdir -p .tmp/build
	ansible-galaxy collection build --force --output-path .tmp/build

sanity: build
	tools/sanity.sh $(SANITY_ARGS)

unit: setup
	pytest tests/unit $(PYTEST_ARGS)

# With the chaos suite's small seeded subset: the trials not marked chaos_full, one of each fault (about a minute).
integration: setup
	pytest tests/integration tests/chaos -m "not chaos_full" $(PYTEST_ARGS)

# Every trial of the chaos suite (CHAOS_SEEDS seeds per fault, default 5); each appends its row to
# .tmp/chaos/results.tsv (started afresh here) and the run ends with a summary table per fault.
chaos: setup
	rm -f .tmp/chaos/results.tsv
	pytest tests/chaos $(PYTEST_ARGS)

test: setup lint unit integration

demo: setup
	$(PY) -m lab demo

# The deploy role's molecule scenario; its state and its lab live in .tmp/molecule/deploy.
# (make integration runs it too, through tests/integration/test_molecule.py.)
molecule: setup
	MOLECULE_EPHEMERAL_DIRECTORY=$(CURDIR)/.tmp/molecule/deploy molecule test --scenario-name deploy

lab-down: setup
	$(PY) -m lab down

bench: setup
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	-$(PY) -m lab down
	-$(PY) -m lab --dir .tmp/molecule/deploy/lab down
	rm -rf .tmp .mypy_cache .ruff_cache .pytest_cache
