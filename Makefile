# The two commands of the README: `make demo` (the main job) and `make test` (the whole suite).
# Both set up everything they need on a fresh Debian machine: the virtual environment with the
# pinned Python packages (constraints.txt) and the Debian packages of the servers the tests start.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SYSTEM_PACKAGES := mosquitto mosquitto-clients victoria-metrics influxdb chromium chromium-driver \
	postgresql \
	nodejs npm
# The node-opcua server of the OPC UA security tests (an OPC UA stack that is not ours) and the
# Eclipse Tahu Sparkplug B edge node of the Sparkplug tests (a Sparkplug implementation not ours).
NODE_OPCUA := tests/opcua_node
NODE_SPARKPLUG := tests/sparkplug_node
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test bench lint typecheck system-deps node-deps venv lock clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || command -v $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi

node-deps: $(NODE_OPCUA)/node_modules/.package-lock.json $(NODE_SPARKPLUG)/node_modules/.package-lock.json

$(NODE_OPCUA)/node_modules/.package-lock.json: $(NODE_OPCUA)/package-lock.json
	npm ci --prefix $(NODE_OPCUA) --no-audit --no-fund

$(NODE_SPARKPLUG)/node_modules/.package-lock.json: $(NODE_SPARKPLUG)/package-lock.json
	npm ci --prefix $(NODE_SPARKPLUG) --no-audit --no-fund --ignore-scripts

demo: venv
	-@$(MAKE) --no-print-directory system-deps
	$(BIN)/circman5 demo

lint: venv
	$(BIN)/ruff check src simulators tests benchmarks
	$(BIN)/ruff format --check src simulators tests benchmarks

typecheck: venv
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

test: system-deps venv node-deps
	$(BIN)/ruff check src simulators tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest

bench: system-deps venv node-deps
	$(BIN)/python -m benchmarks

# Refresh the pinned versions after changing dependencies in pyproject.toml.
lock: venv
	$(BIN)/pip freeze --exclude-editable > constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache $(NODE_OPCUA)/node_modules \
		$(NODE_SPARKPLUG)/node_modules
