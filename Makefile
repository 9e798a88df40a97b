# Set-up and checks. `make test` and `make demo` work from a fresh clone:
# they create .venv, install the package with its dev extra and build the
# native module (incrementally, in build/).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Build requirements, read from pyproject.toml's [build-system] so they live in one place.
BUILD_DEPS = $(shell sed -n 's/^requires = \[\(.*\)\]/\1/p' pyproject.toml | tr -d '",')

.PHONY: all install test demo bench clean

all: install

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# The editable install maps the package's modules when it is made, so a new
# Python file needs a reinstall too: this stamp changes only when the list does.
MODULES_STAMP := build/.pymodules
$(shell mkdir -p build && find pyserver -name '*.py' | sort > $(MODULES_STAMP).new && \
  (cmp -s $(MODULES_STAMP).new $(MODULES_STAMP) || mv $(MODULES_STAMP).new $(MODULES_STAMP)); rm -f $(MODULES_STAMP).new)

# Reinstall when the package metadata, the module list or any native source changes.
$(VENV)/.installed: $(PY) pyproject.toml $(MODULES_STAMP) $(shell find native -type f 2>/dev/null)
	$(PY) -m pip install --quiet $(BUILD_DEPS)
	@command -v cmake >/dev/null || $(PY) -m pip install --quiet "cmake>=3.18" ninja
	$(PY) -m pip install --quiet --no-build-isolation -e '.[dev]'
	@touch $@

install: $(VENV)/.installed

test: install
	$(PY) -m pytest -q

# The model `make demo` generates with: MODEL=path, else a GGUF shipped in models/, else the shared test fixture.
MODEL ?= $(firstword $(wildcard models/*.gguf) $(wildcard ../shared/fixtures/bitnet-b158-i2s-tiny.gguf))

demo: install
	@if [ -n "$(MODEL)" ]; then \
	  $(PY) -m pyserver generate "$(MODEL)" --max-tokens 48; \
	else \
	  echo "No model file found: run 'make demo MODEL=path/to/model.gguf' (GGUF or a safetensors directory)."; \
	  $(PY) -m pyserver bench kernels --quick; \
	fi

bench: install
	$(PY) -m pyserver bench kernels
	$(PY) -m pyserver bench model --shape 2b4t

clean:
	rm -rf build $(VENV) .pytest_cache
