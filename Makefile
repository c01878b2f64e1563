# Two entry points on a fresh machine: `make demo` (the product on the shipped model) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python

$(VENV)/.installed: pyproject.toml tools/bootstrap.sh
	./tools/bootstrap.sh $(VENV)
	touch $@

.PHONY: setup demo test
setup: $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) -m sdls demo

test: $(VENV)/.installed
	$(PY) -m pytest -q
