"""IMPS box: the Pi side of an Interactive Musical Prediction System.

This package runs on the device and never imports TensorFlow or Keras.
Each shared contract lives in exactly one module:

- rows:            the gesture row convention (dt first, controls in [0, 1])
- interaction_log: the per-run CSV interaction log (writer, tolerant reader)
- dataset:         the project's own pickle-free dataset format
- model_file:      the .tflite single-step model contract and its JSON sidecar
"""

__version__ = "0.1.0"
