"""The front panel: mode and shutdown buttons, mode LEDs and gesture pads, on gpiozero.

- ``settings.py``  the ``[panel]`` settings (PanelConfig)
- ``patterns.py``  what the LEDs show, as pure data (no GPIO)
- ``pins.py``      which gpiozero pin factory: lgpio, RPi.GPIO or the mock, per platform
- ``inputs.py``    buttons and pads whose level counts once settled; Pads, the gesture source
- ``leds.py``      the mode LEDs: an LEDBoard playing frames
- ``panel.py``     Panel: short press, long press, hold to shut down, the LED policy
- ``mock.py``      the MockFactory side: press from outside (a FIFO), LEDs as text

Only ``pins.py``, ``settings.py`` and ``patterns.py`` load without gpiozero,
so a box with ``[gpio] backend = "none"`` never imports it.
"""
