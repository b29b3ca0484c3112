"""I/O at the edges: OSC, serial frames and the sensor board, MIDI, notify, the interaction log."""
