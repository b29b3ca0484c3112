"""The front panel: buttons, LEDs and GPIO pads."""
