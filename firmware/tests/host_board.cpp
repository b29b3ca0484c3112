/* The shipped sensor-board sketch, run on the host: stdin/stdout are its serial port.
 *
 *   host_board SECONDS    run setup() once, then loop() for SECONDS (or until the Pi side
 *                         closes), then print "sensor frames N, hello replies N" on stderr.
 *
 * The sketch and config.h are compiled unchanged (see firmware.mk); only the Arduino core
 * is replaced (host_arduino/Arduino.h). Each analog pin reads a slow triangle wave, a
 * different period per pin, so the sketch sees real movement and sends SENSOR frames
 * exactly as it would on the board: its count, its smoothing and deadband, its encoding. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "Arduino.h"

void setup(void);
void loop(void);

volatile uint16_t TCCR1A, TCCR1B, ICR1, OCR1A;
HostSerial Serial;
static struct timespec started;
static unsigned long sensor_frames, hello_replies;
static int closed;

uint32_t millis(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint32_t)((now.tv_sec - started.tv_sec) * 1000 + (now.tv_nsec - started.tv_nsec) / 1000000);
}

int analogRead(uint8_t pin) {
    uint32_t period = 1500 + 700 * (uint32_t)(pin - A0);   /* ms */
    uint32_t t = (millis() + 300 * (uint32_t)(pin - A0)) % period;
    uint32_t half = period / 2;
    return (int)((t < half ? t : period - t) * 1023 / half);
}

void pinMode(uint8_t, uint8_t) {}
void digitalWrite(uint8_t, uint8_t) {}

void HostSerial::begin(unsigned long) {}

int HostSerial::available(void) {
    int n = 0;
    if (ioctl(0, FIONREAD, &n) != 0) { closed = 1; return 0; }
    return n;
}

int HostSerial::read(void) {
    uint8_t byte;
    return ::read(0, &byte, 1) == 1 ? byte : -1;
}

int HostSerial::availableForWrite(void) { return 64; }

size_t HostSerial::write(const uint8_t *data, size_t n) {
    /* Count what the sketch sends, by frame type (the first raw byte is COBS-encoded, so
     * read it back from the second wire byte, which is the type unless it was zero). */
    if (n > 1 && data[1] == 0x01) sensor_frames++;
    if (n > 1 && data[1] == 0x04) hello_replies++;
    size_t done = 0;
    while (done < n) {
        ssize_t w = ::write(1, data + done, n - done);
        if (w < 0) {
            if (errno == EINTR) continue;
            closed = 1;
            return done;
        }
        done += (size_t)w;
    }
    return done;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 5.0;
    clock_gettime(CLOCK_MONOTONIC, &started);
    setup();
    while (!closed && millis() < (uint32_t)(seconds * 1000)) {
        loop();
        struct pollfd in = {0, POLLIN, 0};
        poll(&in, 1, 1);   /* sleep up to 1 ms, woken by bytes from the Pi */
        if (in.revents & (POLLHUP | POLLERR)) closed = !(in.revents & POLLIN);
    }
    fprintf(stderr, "sensor frames %lu, hello replies %lu\n", sensor_frames, hello_replies);
    return 0;
}
