"""IMPS box: the Pi side of an Interactive Musical Prediction System.

This package runs on the device and never imports TensorFlow or Keras. Its
subpackages are the architecture, a list lowest first: each imports only from
its own layer and the ones before it in this list, the layers below it
(docs/architecture.md; tests/test_layout.py enforces it):

- imps (this level): errors, ranges, modes, threads, journal, tomlfile, settings, freeport: the foundations
- imps.model:  the .tflite model file and sidecar, the runtime, sampling, rows, datasets
- imps.io:     OSC, serial frames and the sensor board, MIDI, notify, the interaction log
- imps.panel:  buttons, LEDs and GPIO
- imps.box:    engine, scheduler, config, control routes, the box's parts, the Box's wiring
- imps.sim:    the simulated performer, sensor board, keys and MIDI
- imps.bench:  benchmarks and the soak
- imps.cli:    the ``imps`` command

Each shared contract lives in exactly one module: the gesture row convention in
imps.model.rows, the interaction log in imps.io.interaction_log, the dataset format
in imps.model.dataset, the single-step model contract in imps.model.model_file,
the serial frames in imps.io.serial_frames.
"""

__version__ = "0.1.0"
