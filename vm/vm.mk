# The VM test bed: the whole box on Debian arm64 under QEMU (docs/appliance.md).
# Included by the top Makefile. Building the image needs root (binfmt_misc, mmdebstrap).
.PHONY: vm vm-down vm-ssh vm-image vm-wheels vm-deps test-vm
VM_SUITE ?= trixie
VM_BOARD := build/vm/board

# HOST=vm: the box `make vm` left running (build/vm/host.mk, written by vm/bed.py up:
# its ssh login, port and key, and its USB board's by-id name for provisioning), so
# `make provision HOST=vm` and `make deploy HOST=vm` need nothing else.
ifeq ($(HOST),vm)
ifeq ($(wildcard build/vm/host.mk),)
$(error HOST=vm: no VM is running; make vm first)
endif
include build/vm/host.mk
endif

vm-deps:  ## install the Debian packages of the VM test bed (root or sudo)
	@bash tests/system-deps.sh requirements/apt-vm.txt

vm-image: vm-deps  ## build (once; cached under build/vm/) the Debian arm64 image: VM_SUITE=trixie|bookworm
	@bash vm/image.sh $(VM_SUITE) >/dev/null

# The box's source-only packages compiled once under qemu-user (minutes), not on the
# emulated box at its first deploy (a quarter of an hour): deploy's wheel cache, build/wheels/.
vm-wheels: vm-image $(DEVICE)/.installed  ## compile the box's source packages into wheels under qemu-user, in the image's root
	@bash vm/wheels.sh "$$(bash vm/image.sh $(VM_SUITE))" >/dev/null

# The board runs in the background for as long as the VM does (make vm-down stops both).
vm: vm-image $(DEVICE)/.installed  ## boot the arm64 box with its USB sensor board; leaves it running for ssh, provision, deploy
	@mkdir -p build/vm
	@if ! { [ -f build/vm/board.pid ] && kill -0 $$(cat build/vm/board.pid) 2>/dev/null; }; then \
	  rm -f $(VM_BOARD); \
	  nohup $(DPY) vm/board.py --link $(VM_BOARD) >build/vm/board.log 2>&1 & echo $$! >build/vm/board.pid; \
	  for i in $$(seq 100); do [ -e $(VM_BOARD) ] && break; sleep 0.1; done; \
	fi
	@$(PYTHON) vm/bed.py up --suite $(VM_SUITE) --board $$(readlink -f $(VM_BOARD))

vm-down:  ## power the VM off and stop its board
	@$(PYTHON) vm/bed.py down
	@if [ -f build/vm/board.pid ]; then kill $$(cat build/vm/board.pid) 2>/dev/null || true; rm -f build/vm/board.pid; fi

vm-ssh:  ## a shell on the running VM (make vm first)
	@$(PYTHON) vm/bed.py ssh

test-vm: vm-deps setup  ## the VM tests: the box provisioned, deployed and driven on a real arm64 Debian (slow)
	$(WPY) -m pytest -q -p no:cacheprovider -m vm tests/vm $(PYTEST_ARGS)
