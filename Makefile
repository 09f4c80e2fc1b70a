# edgecc — `make setup`, `make demo`, `make test` (see README.md).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
EDGECC := $(VENV)/bin/edgecc
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Toolchains the later paths need: Cortex-M firmware and QEMU, aarch64 cross builds and qemu-user,
# Vulkan (Mesa lavapipe) for the Mali generic build, sshd for the SSH device tests, shellcheck for the device
# scripts, chromium to render reports, strace for the hostile-input tests (nothing read outside a bundle).
APT_PACKAGES := gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm qemu-user g++-aarch64-linux-gnu strace \
	mesa-vulkan-drivers openssh-server shellcheck chromium
PYTEST_ARGS ?=

.PHONY: setup apt venv lint demo test test-all bench clean

setup: apt venv

# Idempotent: installs only the packages that are missing; sudo only when not root.
apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "setup: apt-get install $$missing"; \
		$(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	else echo "setup: apt packages present"; fi

venv: $(VENV)/.edgecc-installed

# Re-installs only when pyproject.toml changes. torch==2.13.0 is pinned (the CPU wheel).
$(VENV)/.edgecc-installed: pyproject.toml
	@[ -x $(PY) ] || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[full,test]"
	@touch $@

demo: setup
	$(EDGECC) compile resnet8 --target host --backend iree -o build/resnet8-host-iree
	$(EDGECC) compile resnet8 --target host --backend tvm -o build/resnet8-host-tvm
	$(EDGECC) compile resnet8 --target cortex-m4 --board mps2-an386 -o build/resnet8-cortex-m4-micro
	$(EDGECC) compile digits-cnn --target cortex-m4 --board mps2-an386 --quantize int8 --calibration digits \
		-o build/digits-cnn-cortex-m4-int8
	$(EDGECC) bench build/resnet8-host-iree build/resnet8-host-tvm --warmup 5 --iters 50 --baselines ort,torch \
		--json build/reports/demo-bench.json
	$(EDGECC) bench build/resnet8-cortex-m4-micro --device qemu --warmup 1 --iters 3 \
		--json build/reports/demo-bench-cortex-m4.json
	$(EDGECC) report build/reports -o build/report.html --markdown build/report.md

lint: venv
	$(VENV)/bin/ruff check .

test: setup lint
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-all: setup lint
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf build
