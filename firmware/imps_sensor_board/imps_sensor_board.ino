/* IMPS sensor board: analog sensors -> serial frames; actuator frames -> servo and LED.
 *
 * Protocol: firmware/PROTOCOL.md, implemented in firmware/src/imps_protocol.c (plain C,
 * unit-tested on the host). Settings: config.h. Builds for Leonardo and Uno with
 * `make firmware` from the repository root. */
#include <Arduino.h>

#include "config.h"
#include "imps_protocol.h"

#if SENSOR_COUNT < 1 || SENSOR_COUNT > IMPS_MAX_CHANNELS
#error "SENSOR_COUNT must be between 1 and IMPS_MAX_CHANNELS (16)"
#endif
#if ACTUATOR_COUNT > IMPS_MAX_CHANNELS
#error "ACTUATOR_COUNT must be at most IMPS_MAX_CHANNELS (16)"
#endif
#if SERVO_PIN != 9
#error "the servo uses Timer1 OC1A, which is pin 9 on the Uno and the Leonardo"
#endif

static const uint8_t sensor_pins[SENSOR_COUNT] = SENSOR_PINS;
static uint16_t smoothed[SENSOR_COUNT];   /* ADC counts << 6, so smoothing keeps fractions */
static uint16_t reported[SENSOR_COUNT];   /* ADC counts, moved only past the deadband */
static uint8_t tx_seq;
static imps_rx rx;
static uint32_t last_sample_ms, last_frame_ms;
static bool changed;

/* -- servo on Timer1: fast PWM, TOP = ICR1, 50 Hz, 0.5 us ticks at 16 MHz ------------ */
#define SERVO_TICKS_PER_US (F_CPU / 8 / 1000000UL)

static void servo_write(uint16_t fixed) {
    uint32_t us = SERVO_MIN_US + ((uint32_t)(SERVO_MAX_US - SERVO_MIN_US) * fixed) / 65535UL;
    OCR1A = (uint16_t)(us * SERVO_TICKS_PER_US);
}

static void servo_begin(void) {
    pinMode(SERVO_PIN, OUTPUT);
    TCCR1A = _BV(COM1A1) | _BV(WGM11);               /* clear OC1A on match, mode 14 */
    TCCR1B = _BV(WGM13) | _BV(WGM12) | _BV(CS11);    /* mode 14, clock / 8 */
    ICR1 = (uint16_t)(20000UL * SERVO_TICKS_PER_US - 1);  /* 20 ms period */
    servo_write(SERVO_REST);
}

/* -- sensors --------------------------------------------------------------------------- */
static void sensors_begin(void) {
    for (uint8_t i = 0; i < SENSOR_COUNT; i++) {
        uint16_t adc = analogRead(sensor_pins[i]);
        smoothed[i] = adc << 6;
        reported[i] = adc;
    }
}

/* Read every channel, smooth it, move reported values past the deadband. True if any moved. */
static bool sensors_sample(void) {
    bool moved = false;
    for (uint8_t i = 0; i < SENSOR_COUNT; i++) {
        int32_t target = (int32_t)analogRead(sensor_pins[i]) << 6;
        smoothed[i] = (uint16_t)(smoothed[i] + ((target - (int32_t)smoothed[i]) >> SMOOTHING_SHIFT));
        uint16_t value = (smoothed[i] + 32) >> 6;   /* round to ADC counts */
        if (value > 1023) value = 1023;
        uint16_t diff = value > reported[i] ? value - reported[i] : reported[i] - value;
        /* the ends always get through, so a pot at its stop reads exactly 0 or 1 */
        if (diff >= DEADBAND || (value != reported[i] && (value == 0 || value == 1023))) {
            reported[i] = value;
            moved = true;
        }
    }
    return moved;
}

/* -- frames ---------------------------------------------------------------------------- */
static void send_frame(imps_frame *frame) {
    uint8_t wire[IMPS_MAX_WIRE];
    frame->seq = tx_seq++;   /* counted even if dropped below, so the Pi sees the gap */
    size_t n = imps_encode_frame(frame, wire, sizeof wire);
    /* Never block the sampling loop: drop the frame when the USB or UART buffer is full.
     * (Not `if (!Serial)`: on the Leonardo that costs a 10 ms delay per call.) */
    if (n == 0 || Serial.availableForWrite() < (int)n) return;
    Serial.write(wire, n);
}

static void send_sensors(void) {
    imps_frame frame;
    frame.type = IMPS_SENSOR;
    frame.count = SENSOR_COUNT;
    for (uint8_t i = 0; i < SENSOR_COUNT; i++) frame.values[i] = imps_adc10_to_fixed(reported[i]);
    send_frame(&frame);
}

static void send_hello_reply(void) {
    imps_frame frame;
    frame.type = IMPS_HELLO_REPLY;
    frame.count = SENSOR_COUNT;
    frame.protocol = IMPS_PROTOCOL_VERSION;
    frame.fw_major = FIRMWARE_MAJOR;
    frame.fw_minor = FIRMWARE_MINOR;
    frame.actuators = ACTUATOR_COUNT;
    send_frame(&frame);
}

static void apply_actuators(const imps_frame *frame) {
    if (frame->count > 0) servo_write(frame->values[0]);
    if (frame->count > 1) digitalWrite(STATUS_LED_PIN, frame->values[1] >= 32768 ? HIGH : LOW);
}

static void poll_serial(void) {
    imps_frame frame;
    int budget = 64;   /* bytes per loop pass, so a flood cannot starve the sensors */
    while (budget-- > 0 && Serial.available() > 0) {
        if (imps_rx_push(&rx, (uint8_t)Serial.read(), &frame) != IMPS_OK) continue;
        if (frame.type == IMPS_HELLO) send_hello_reply();
        else if (frame.type == IMPS_ACTUATOR) apply_actuators(&frame);
    }
}

void setup(void) {
    pinMode(STATUS_LED_PIN, OUTPUT);
    digitalWrite(STATUS_LED_PIN, LOW);
    servo_begin();
    Serial.begin(SERIAL_BAUD);
    imps_rx_init(&rx);
    sensors_begin();
    last_sample_ms = last_frame_ms = millis();
}

void loop(void) {
    uint32_t now = millis();
    poll_serial();
    if (now - last_sample_ms >= SAMPLE_INTERVAL_MS) {
        last_sample_ms = now;
        if (sensors_sample()) changed = true;
    }
    if ((changed && now - last_frame_ms >= MIN_FRAME_INTERVAL_MS) || now - last_frame_ms >= HEARTBEAT_MS) {
        last_frame_ms = now;
        changed = false;
        send_sensors();
    }
}
