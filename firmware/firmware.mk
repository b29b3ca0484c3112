# Firmware targets, included by the top-level Makefile.
#   make firmware-test   host C tests of the protocol code against firmware/vectors.json
#   make firmware        AVR build for Leonardo and Uno, prints flash and RAM use
#   make firmware-upload BOARD=leonardo PORT=/dev/ttyACM0   flash a board (needs avrdude)
#   make firmware-host   the shipped sketch built for this machine (stdin/stdout as its serial port)
.PHONY: firmware firmware-test firmware-upload firmware-host

FW_BUILD := build/firmware
FW_HOST := $(FW_BUILD)/host
FW_BOARDS := leonardo uno
FW_CC ?= gcc
FW_SANITIZE ?= -fsanitize=address,undefined -fno-omit-frame-pointer
FW_HOST_CFLAGS := -std=c99 -Wall -Wextra -Werror -pedantic -O1 -g $(FW_SANITIZE)
# Debian's arduino-mk pulls in the Arduino IDE and a JRE; we only need its makefiles, so
# unless it is installed we fetch the .deb with `apt-get download` and unpack it into build/.
FW_ARDMK_LOCAL := $(abspath $(FW_BUILD))/arduino-mk/usr/share/arduino
FW_ARDMK_DIR ?= $(if $(wildcard /usr/share/arduino/Arduino.mk),/usr/share/arduino,$(FW_ARDMK_LOCAL))

firmware-test: $(FW_HOST)/test_protocol  ## host C tests of the serial protocol (shared vectors)
	ASAN_OPTIONS=detect_leaks=0 $(FW_HOST)/test_protocol

$(FW_HOST)/vectors.h: firmware/vectors.json firmware/tests/vectors_to_c.py
	@mkdir -p $(@D)
	$(PYTHON) firmware/tests/vectors_to_c.py $< $@

$(FW_HOST)/test_protocol: firmware/tests/test_protocol.c firmware/src/imps_protocol.c firmware/src/imps_protocol.h $(FW_HOST)/vectors.h
	$(FW_CC) $(FW_HOST_CFLAGS) -Ifirmware/src -I$(FW_HOST) firmware/src/imps_protocol.c firmware/tests/test_protocol.c -o $@

# The sketch itself, unchanged, on the host: only the Arduino core is a stand-in
# (firmware/tests/host_arduino). tests/test_firmware_host.py runs it against the real box.
FW_CXX ?= g++
FW_SKETCH := firmware/imps_sensor_board
firmware-host: $(FW_HOST)/host_board

$(FW_HOST)/host_board: $(FW_SKETCH)/imps_sensor_board.ino $(FW_SKETCH)/config.h firmware/tests/host_board.cpp firmware/tests/host_arduino/Arduino.h firmware/src/imps_protocol.c firmware/src/imps_protocol.h
	@mkdir -p $(@D)
	$(FW_CC) -std=c99 -Wall -Wextra -Werror -O1 -c firmware/src/imps_protocol.c -o $(FW_HOST)/imps_protocol.o
	$(FW_CXX) -std=c++11 -Wall -Wextra -Werror -O1 -Ifirmware/tests/host_arduino -I$(FW_SKETCH) -Ifirmware/src \
	  -x c++ $(FW_SKETCH)/imps_sensor_board.ino -x none firmware/tests/host_board.cpp $(FW_HOST)/imps_protocol.o -o $@

$(FW_ARDMK_LOCAL)/Arduino.mk:
	@mkdir -p $(FW_BUILD)/deb
	@echo "== fetching arduino-mk (makefiles only) into $(FW_BUILD)"
	cd $(FW_BUILD)/deb && rm -f arduino-mk_*.deb && apt-get download arduino-mk
	dpkg -x $(FW_BUILD)/deb/arduino-mk_*.deb $(FW_BUILD)/arduino-mk
	@touch $@

firmware: $(FW_ARDMK_DIR)/Arduino.mk  ## build the sensor-board sketch for Leonardo and Uno (flash/RAM use)
	@for board in $(FW_BOARDS); do \
	  $(MAKE) --no-print-directory -s -C firmware/imps_sensor_board BOARD_TAG=$$board \
	    ARDMK_DIR=$(FW_ARDMK_DIR) OBJDIR=$(abspath $(FW_BUILD))/$$board >$(FW_BUILD)/$$board.log 2>&1 \
	    || { cat $(FW_BUILD)/$$board.log; echo "firmware build for $$board failed (log: $(FW_BUILD)/$$board.log)"; exit 1; }; \
	done
	@for board in $(FW_BOARDS); do \
	  case $$board in leonardo) mcu=atmega32u4;; uno) mcu=atmega328p;; esac; \
	  elf=$$(ls $(FW_BUILD)/$$board/*.elf); echo "== $$board ($$mcu): $${elf%.elf}.hex"; \
	  avr-size -C --mcu=$$mcu $$elf | grep -E 'Program|Data'; \
	done

firmware-upload: $(FW_ARDMK_DIR)/Arduino.mk  ## flash a board: BOARD=leonardo|uno PORT=/dev/ttyACM0 (needs avrdude)
	$(MAKE) -C firmware/imps_sensor_board BOARD_TAG=$(or $(BOARD),leonardo) ARDMK_DIR=$(FW_ARDMK_DIR) \
	  OBJDIR=$(abspath $(FW_BUILD))/$(or $(BOARD),leonardo) MONITOR_PORT=$(or $(PORT),/dev/ttyACM0) upload
