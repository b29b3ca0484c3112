"""Simulation: a recorded performer, a virtual sensor board, terminal keys, simulated MIDI."""
