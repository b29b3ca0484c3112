"""The VM's sensor board: the simulated board speaking what the shipped sketch sends.

As many channels, actuators and the firmware version as the sketch's
firmware/imps_sensor_board/config.h says, replaying the bundled LightPad
performance (its controls repeated to fill the channels) in 2 s phrases with
3 s rests, so call and response has silences to answer. Its pty is the host side
of the VM's USB serial adapter.

    .venv/device/bin/python vm/board.py --link build/vm/board    (runs until killed)
"""
from __future__ import annotations

import argparse
import re
import signal
import sys
import threading
from pathlib import Path

import numpy as np

from imps.sim.board import SimulatedBoard
from imps.sim.replay import load_performance

ROOT = Path(__file__).resolve().parent.parent


def firmware_settings() -> dict:
    """SENSOR_COUNT, ACTUATOR_COUNT and the version from the shipped sketch's config.h."""
    text = (ROOT / "firmware" / "imps_sensor_board" / "config.h").read_text()

    def get(name):
        return int(re.search(rf"#define {name} (\d+)", text).group(1))
    return dict(sensors=get("SENSOR_COUNT"), actuators=get("ACTUATOR_COUNT"),
                firmware=(get("FIRMWARE_MAJOR"), get("FIRMWARE_MINOR")))


def sketch_board(link) -> SimulatedBoard:
    fw = firmware_settings()
    rows = load_performance(ROOT / "device" / "imps" / "data" / "lightpad-performance.npz")
    controls = rows[:, 1:]
    reps = -(-fw["sensors"] // controls.shape[1])
    wide = np.hstack([rows[:, :1], np.tile(controls, reps)[:, :fw["sensors"]]])
    return SimulatedBoard(wide, link, firmware=fw["firmware"], actuators=fw["actuators"],
                          max_dt=1.0, phrase_seconds=2.0, rest_seconds=3.0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--link", required=True, help="where the pty is published")
    a = p.parse_args(argv)
    board = sketch_board(a.link).start()
    print(f"board: {board.info.channels} channels at {a.link}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    board.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
