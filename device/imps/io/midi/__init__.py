"""MIDI in and out: controllers as an input source, synths as a voice.

One job per module, data flowing one way:

- ``settings``:   the ``[midi]`` config section (devices, mappings, ranges)
- ``mapping``:    pure: a MIDI message -> control updates; a voice event -> MIDI messages
                  with the note-off bookkeeping (no stuck notes)
- ``din``:        DIN MIDI on a UART (pyserial) as mido ports
- ``virtual``:    in-process MIDI devices and ports (the simulation and the tests' hardware seam)
- ``transports``: alsa (USB MIDI via python-rtmidi through mido), din, virtual: port names and opening
- ``ports``:      what our own input ports (DIN, virtual) share: a callback, or mido's queue
- ``watcher``:    hot-plug: open ports that appear, drop ports that vanish
- ``devices``:    what MIDI in and out share: the watcher's thread, rates, stopping
- ``source``:     :class:`MidiInput`, an input source (see imps.io.inputs)
- ``voice``:      :class:`MidiOutput`, a voice beside the sound engine (see imps.box.engine)
- ``midifile``:   standard MIDI files -> performance rows, and a file player for the simulation
- ``status``:     MIDI in the box's status line
- ``impsy``:      IMPSY's ``[midi]`` config section -> ours

mido does the messages and their bytes; python-rtmidi the ALSA ports; pyserial the UART.
"""
