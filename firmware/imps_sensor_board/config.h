/* IMPS sensor board: everything a builder may want to change, in one place.
 * Pins are Arduino pin names; the same values work on a Leonardo (ATmega32U4)
 * and an Uno (ATmega328P). See docs/hardware.md for the wiring. */
#ifndef IMPS_CONFIG_H
#define IMPS_CONFIG_H

/* Firmware version, reported in the HELLO_REPLY frame. */
#define FIRMWARE_MAJOR 1
#define FIRMWARE_MINOR 0

/* USB serial speed. The Leonardo's USB CDC ignores it; the Uno's UART uses it. */
#define SERIAL_BAUD 115200

/* Sensor channels: potentiometers or force sensors, one per analog pin. The box plays
 * SENSOR_COUNT controls, so this must equal its [engine] dimension - 1: 3 for the bundled
 * model and the provisioned box.toml (dimension 4). Otherwise map the channels in the box's
 * [serial] channels; the box says so once, naming both numbers, when the board connects. */
#define SENSOR_COUNT 3
#define SENSOR_PINS { A0, A1, A2 }

/* Read every sensor this often (milliseconds). */
#define SAMPLE_INTERVAL_MS 2
/* Smoothing: an exponential moving average, new = old + (reading - old) / 2^SMOOTHING_SHIFT.
 * 0 = off, 2 = a quarter of each new reading (about 8 ms to settle at 2 ms sampling). */
#define SMOOTHING_SHIFT 2
/* Deadband in ADC counts (of 0..1023): a channel's reported value moves only when the
 * smoothed reading is at least this far from it. Kills flicker from noisy pots. */
#define DEADBAND 4

/* Frames: at once on change (but no closer than MIN_FRAME_INTERVAL_MS), and at the steady
 * heartbeat rate when nothing moves, so the Pi can tell a quiet board from a dead one. */
#define MIN_FRAME_INTERVAL_MS 5   /* at most 200 frames/s while moving */
#define HEARTBEAT_MS 50           /* 20 frames/s steady rate */

/* Actuators, in ACTUATOR frame order: 0 = servo (lever), 1 = status LED. */
#define ACTUATOR_COUNT 2
/* The servo is driven by Timer1 PWM on OC1A, which is digital pin 9 on both the Uno and
 * the Leonardo (fixed by the hardware, so not configurable). Do not analogWrite pins 9/10. */
#define SERVO_PIN 9
#define SERVO_MIN_US 1000     /* pulse width for actuator value 0.0 */
#define SERVO_MAX_US 2000     /* pulse width for actuator value 1.0 */
#define SERVO_REST 32768      /* position at power-up, fixed point (32768 = middle) */
/* Status LED: on while actuator value 1 is >= 0.5. Pin 13 is the on-board LED. */
#define STATUS_LED_PIN 13

#endif /* IMPS_CONFIG_H */
