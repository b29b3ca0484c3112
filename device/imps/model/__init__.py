"""The model: its file and sidecar, the TFLite runtime, sampling, the data format, the check."""
