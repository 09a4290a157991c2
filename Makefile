# Embedlapse: `make demo` trains the built-in demo and films it, `make test` runs every test.
SHELL := /bin/bash
APT_PACKAGES := libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libcairo2-dev \
                libopenblas-dev liblapacke-dev zlib1g-dev pkg-config fontconfig fonts-dejavu-core \
                dataset-fashion-mnist ffmpeg python3-venv chromium chromium-driver strace slurmctld slurmd slurm-client munge
VENV := .venv
BIN := .build/release/embedlapse

.PHONY: demo test bench deps build clean tsan fuzz fuzz-ci golden

# Installs the Debian packages that are missing (sudo when not root).
deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  sudo=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing >/dev/null; \
	fi

build: deps
	swift build -c release --product embedlapse

demo: build
	$(BIN) demo -o demo.mp4 -o demo.gif

# numpy, scipy, scikit-learn and cleanlab: the independent references the tests compare with.
# and the Python helper, installed as a user would (pip install ./python).
$(VENV)/.installed: Tests/reference/requirements.txt python/pyproject.toml $(wildcard python/embedlapse/*.py)
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r Tests/reference/requirements.txt
	$(VENV)/bin/pip install -q --disable-pip-version-check ./python
	touch $@

# One release build with testing enabled serves the Swift tests and the binary the Python tests run:
# a debug build beside it would compile the HTTP server's packages (SwiftNIO, Hummingbird) a second time.
# `make build` stays the plain release build that the demo and the benchmark use.
TEST_SCRATCH ?= .build-test
# Python test files run two at a time (pytest-xdist, a file's tests together): many of them wait on
# a watcher, a browser or a training run, and two at a time took 4.2 minutes against 6.4 here.
PYTEST_WORKERS ?= 2
test: deps $(VENV)/.installed
	swift test -c release -Xswiftc -enable-testing --scratch-path $(TEST_SCRATCH)
	EMBEDLAPSE_BIN=$(CURDIR)/$(TEST_SCRATCH)/release/embedlapse $(VENV)/bin/python -m pytest -q -p no:cacheprovider \
	    -n $(PYTEST_WORKERS) --dist loadfile Tests/reference python/tests
	$(MAKE) fuzz-ci

# Rewrites the golden frames (Tests/golden) from the current build, on purpose: look at them, then commit.
golden: build $(VENV)/.installed
	EMBEDLAPSE_REFRESH_GOLDEN=1 EMBEDLAPSE_BIN=$(CURDIR)/$(BIN) $(VENV)/bin/python -m pytest -q -p no:cacheprovider Tests/reference/test_frames.py -k "golden or help_text"

# Embedlapse against the Python reference pipeline (shared/reference) on the same runs; minutes.
.venv-bench/.installed: benchmarks/requirements.txt
	python3 -m venv .venv-bench
	.venv-bench/bin/pip install -q --disable-pip-version-check -r benchmarks/requirements.txt
	touch $@

bench: build .venv-bench/.installed
	EMBEDLAPSE_BIN=$(CURDIR)/$(BIN) .venv-bench/bin/python benchmarks/bench.py

# The multi-threaded tests (outlier searches, incremental PCA, UMAP) under ThreadSanitizer, C kernels
# included; the first report fails the run. The screened search's tests need AVX-512 VNNI and are
# skipped without it. About 15-20 minutes from a clean .build-tsan on 2 busy cores, mostly building.
tsan:
	TSAN_OPTIONS="halt_on_error=1 $$TSAN_OPTIONS" swift test --scratch-path .build-tsan -c debug --sanitize=thread --filter 'OutlierScoresTests|IncrementalPCATests|LeadingComponentSearchTests|UMAPTests'

clean:
	rm -rf .build .build-test $(VENV) .venv-bench .bench-cache demo.mp4 demo.gif

# A single-node Slurm cluster on this machine (munged, slurmctld, slurmd) for scripts/slurm-analyse.sh
# and its tests; scripts/slurm-local.sh stop stops it. Needs root. See docs/slurm.md.
.PHONY: slurm-up
slurm-up: deps
	scripts/slurm-local.sh start

# libFuzzer targets of the input parsers (Tests/Fuzz), built apart from the package: `make fuzz`
# fuzzes each for FUZZ_SECONDS, `make fuzz-ci` replays the crash reproducers and the committed
# corpus with a short mutation run each. Crashes go to Tests/Fuzz/crashes/<target>/.
FUZZ_SECONDS ?= 60
fuzz: deps
	Tests/Fuzz/fuzz.sh run $(FUZZ_SECONDS)

fuzz-ci: deps
	Tests/Fuzz/fuzz.sh ci
