# IMPS box: the front door.  `make run` plays, `make test` checks. Both set up
# what they need on first use (and are quick the second time).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
WORK := $(VENV)/work
DEVICE := $(VENV)/device
WPY := $(WORK)/bin/python
DPY := $(DEVICE)/bin/python
IMPSY_ENV := $(VENV)/impsy
IPY := $(IMPSY_ENV)/bin/python
export IMPS_DEVICE_PYTHON := $(abspath $(DPY))
export IMPS_WORK_PYTHON := $(abspath $(WPY))
export IMPS_IMPSY_PYTHON := $(abspath $(IPY))

.DEFAULT_GOAL := help
.PHONY: help setup run test test-python system-deps clean default-model impsy-env soak

help:  ## list the commands
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | sort | column -t -s $$'\t'

setup: $(WORK)/.installed $(DEVICE)/.installed  ## make both Python environments

# The workstation environment: everything (TensorFlow, training, tests).
$(WORK)/.installed: requirements/work.txt device/requirements.txt device/pyproject.toml training/pyproject.toml
	@echo "== workstation environment in $(WORK) (first time takes a few minutes)"
	$(PYTHON) -m venv $(WORK)
	$(WPY) -m pip install -q --upgrade pip
	$(WPY) -m pip install -q -r requirements/work.txt
	$(WPY) -m pip install -q --no-deps -e device -e training
	@touch $@

# The device environment: exactly the Pi's dependencies, no TensorFlow.
$(DEVICE)/.installed: requirements/device-test.txt device/requirements.txt device/pyproject.toml
	@echo "== device environment in $(DEVICE)"
	$(PYTHON) -m venv $(DEVICE)
	$(DPY) -m pip install -q --upgrade pip
	$(DPY) -m pip install -q -r requirements/device-test.txt
	$(DPY) -m pip install -q --no-deps -e device
	@touch $@

# IMPSY's own environment: IMPSY from PyPI with its own TensorFlow and numpy (docs/impsy.md).
impsy-env: $(IMPSY_ENV)/.installed  ## IMPSY's own environment, for the interop tests and make bench-impsy
$(IMPSY_ENV)/.installed: requirements/impsy.txt requirements/impsy-package.txt
	@echo "== IMPSY's environment in $(IMPSY_ENV)"
	$(PYTHON) -m venv $(IMPSY_ENV)
	$(IPY) -m pip install -q --upgrade pip
	$(IPY) -m pip install -q -r requirements/impsy.txt
	$(IPY) -m pip install -q --no-deps -r requirements/impsy-package.txt
	@touch $@

system-deps:  ## install the Debian packages the tests need (root or sudo)
	@bash tests/system-deps.sh requirements/apt.txt

WEB_PORT ?= 8080
run: $(DEVICE)/.installed  ## play: a simulated box (default model, call and response) on the sound engine (Pure Data; SOUND=off: none) and its page on 127.0.0.1:8080 (WEB_PORT); CONFIG=box.toml runs real hardware; MIDI=song.mid plays a MIDI file as the performer; WAV=take.wav records it
	$(DEVICE)/bin/imps run --web $(WEB_PORT) $(if $(CONFIG),--config $(CONFIG),--simulate) $(if $(MIDI),--midi-file $(MIDI)) \
	  $(if $(filter off,$(SOUND)),--no-sound-engine,--sound-engine) $(if $(WAV),--record $(WAV)) $(ARGS)

test: system-deps setup impsy-env  ## run every test
	$(MAKE) test-python

# The soak: the real box under random faults for SOAK_MINUTES (docs/reliability.md).
SOAK_MINUTES ?= 2
soak: $(DEVICE)/.installed  ## run the real box under random faults (SOAK_MINUTES=2) and account for every event
	$(DEVICE)/bin/imps soak --minutes $(SOAK_MINUTES) $(SOAK_ARGS)

test-python:
	$(WPY) -m pytest -q tests $(PYTEST_ARGS)

# The bundled models (docs/model.md): 128 units on the 100K LightPad set (about 45 minutes on
# 2 quiet cores) and 128 units on the X-Touch Mini's 9-D set (11 epochs, about 6 minutes).
DEFAULT_MODEL := device/imps/models/default
XTOUCH_MODEL := device/imps/models/xtouch-9d
default-model: $(WORK)/.installed  ## re-make both bundled models from the bundled datasets
	$(WORK)/bin/imps-train dataset --import-npz training/datasets/lightpad-4d-100k.npz -o build/lightpad-4d-100k.npz
	$(WORK)/bin/imps-train train build/lightpad-4d-100k.npz -o build/default-run --size m --windows-per-epoch 12800
	$(WORK)/bin/imps-train export build/default-run -o $(DEFAULT_MODEL).tflite --pi-temperature 1 --sigma-temperature 2
	cp build/default-run/loss.png $(DEFAULT_MODEL)-loss.png
	cp build/default-run/history.csv $(DEFAULT_MODEL)-history.csv
	$(WORK)/bin/imps-train dataset --import-npz training/datasets/xtouch-9d.npz -o build/xtouch-9d.npz
	$(WORK)/bin/imps-train train build/xtouch-9d.npz -o build/xtouch-9d-run --size m --windows-per-epoch 6400 \
	  --val-windows 2048 --epochs 11
	$(WORK)/bin/imps-train export build/xtouch-9d-run -o $(XTOUCH_MODEL).tflite --pi-temperature 1.5 --sigma-temperature 2
	cp build/xtouch-9d-run/loss.png $(XTOUCH_MODEL)-loss.png
	cp build/xtouch-9d-run/history.csv $(XTOUCH_MODEL)-history.csv

clean:  ## remove the environments and build output
	rm -rf $(VENV) build

-include firmware/firmware.mk
-include deploy/deploy.mk
-include training/training.mk
-include vm/vm.mk
