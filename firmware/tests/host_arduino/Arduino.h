/* A host stand-in for the few Arduino and AVR names the sketch uses, so the shipped sketch
 * (imps_sensor_board.ino with the shipped config.h) runs unchanged on a workstation and
 * talks to the real box over a pseudo-terminal. Only for tests: see host_board.cpp. */
#ifndef IMPS_HOST_ARDUINO_H
#define IMPS_HOST_ARDUINO_H

#include <stddef.h>
#include <stdint.h>

#define F_CPU 16000000UL
#define HIGH 1
#define LOW 0
#define OUTPUT 1
#define INPUT 0
#define _BV(bit) (1U << (bit))
/* Analog pin names as on the Uno and Leonardo (A0 = 14, ...). */
enum { A0 = 14, A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11 };
/* Timer1 registers and bits (the servo): plain variables here. */
extern volatile uint16_t TCCR1A, TCCR1B, ICR1, OCR1A;
enum { WGM10 = 0, WGM11 = 1, COM1A1 = 7, CS10 = 0, CS11 = 1, WGM12 = 3, WGM13 = 4 };

uint32_t millis(void);
int analogRead(uint8_t pin);
void pinMode(uint8_t pin, uint8_t mode);
void digitalWrite(uint8_t pin, uint8_t value);

/* The board's serial port: the harness's stdin (bytes from the Pi) and stdout (to the Pi). */
class HostSerial {
public:
    void begin(unsigned long baud);
    int available(void);
    int read(void);
    int availableForWrite(void);
    size_t write(const uint8_t *data, size_t n);
};
extern HostSerial Serial;

#endif
