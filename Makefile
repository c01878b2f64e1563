# Entry points on a fresh machine: `make demo` (the product on the shipped model), `make test` and
# `make lint` (what CI runs, with editors/vscode/ci.sh).
VENV ?= .venv
PY := $(VENV)/bin/python
LINT_BIN := tools/lint/node_modules/.bin

$(VENV)/.installed: pyproject.toml model/pyproject.toml kernels/pyproject.toml tools/bootstrap.sh
	./tools/bootstrap.sh $(VENV)
	touch $@

# StyLua and pyright, pinned in tools/lint/package-lock.json (each ships its binary in the package).
$(LINT_BIN)/.installed: tools/lint/package.json tools/lint/package-lock.json
	cd tools/lint && npm ci --no-audit --no-fund --loglevel=error
	touch $@

editors/vscode/node_modules/.installed: editors/vscode/package.json editors/vscode/package-lock.json
	cd editors/vscode && npm ci --no-audit --no-fund --loglevel=error
	touch $@

.PHONY: setup demo test lint
setup: $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) -m sdls demo

test: $(VENV)/.installed
	$(PY) -m pytest -q

lint: $(VENV)/.installed $(LINT_BIN)/.installed editors/vscode/node_modules/.installed
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(LINT_BIN)/stylua --config-path editors/nvim/stylua.toml --check editors/nvim
	cd editors/vscode && npx tsc -p . --noEmit
	$(LINT_BIN)/pyright --pythonpath $(abspath $(PY)) --outputjson > $(VENV)/pyright.json || true
	$(PY) tools/lint/pyright_summary.py $(VENV)/pyright.json
