/* IMPS serial frame protocol: COBS framing, CRC-16/CCITT-FALSE, fixed-point values.
 *
 * Plain C99, no Arduino dependencies: compiled into the sketch for AVR and
 * into the host tests with gcc. The byte layout is in firmware/PROTOCOL.md;
 * the shared test vectors are firmware/vectors.json.
 *
 *   wire = COBS(raw) 0x00
 *   raw  = type:u8 seq:u8 n:u8 body crc:u16le   (crc over type..body)
 */
#ifndef IMPS_PROTOCOL_H
#define IMPS_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IMPS_PROTOCOL_VERSION 1
#define IMPS_MAX_CHANNELS 16
#define IMPS_HEADER_LEN 3
#define IMPS_CRC_LEN 2
#define IMPS_HELLO_BODY_LEN 4
/* Longest raw frame, longest COBS chunk, longest wire frame (with delimiter). */
#define IMPS_MAX_RAW (IMPS_HEADER_LEN + 2 * IMPS_MAX_CHANNELS + IMPS_CRC_LEN)
#define IMPS_MAX_ENCODED (IMPS_MAX_RAW + 1)
#define IMPS_MAX_WIRE (IMPS_MAX_ENCODED + 1)

enum imps_frame_type {
    IMPS_SENSOR = 0x01,      /* board -> Pi: n sensor values */
    IMPS_ACTUATOR = 0x02,    /* Pi -> board: n actuator values */
    IMPS_HELLO = 0x03,       /* Pi -> board: n = 0, no body */
    IMPS_HELLO_REPLY = 0x04  /* board -> Pi: n = sensor channels, body = protocol, fw major, fw minor, actuators */
};

/* Decode results; the names match the "error" strings in vectors.json. */
enum imps_status {
    IMPS_OK = 0,
    IMPS_ERR_COBS = -1,    /* "cobs": a COBS code runs past the chunk */
    IMPS_ERR_SHORT = -2,   /* "short": fewer than 5 raw bytes */
    IMPS_ERR_CRC = -3,     /* "crc": checksum mismatch */
    IMPS_ERR_TYPE = -4,    /* "type": unknown frame type */
    IMPS_ERR_COUNT = -5,   /* "count": n > IMPS_MAX_CHANNELS, or HELLO with n != 0 */
    IMPS_ERR_LENGTH = -6,  /* "length": body length does not match type and n */
    IMPS_ERR_LONG = -7,    /* "long": chunk longer than IMPS_MAX_ENCODED */
    IMPS_NONE = 1          /* streaming: no complete chunk yet (or an idle delimiter) */
};

typedef struct {
    uint8_t type;
    uint8_t seq;
    uint8_t count;                         /* n: values, or sensor channels in HELLO_REPLY */
    uint16_t values[IMPS_MAX_CHANNELS];    /* SENSOR, ACTUATOR */
    uint8_t protocol;                      /* HELLO_REPLY */
    uint8_t fw_major, fw_minor;            /* HELLO_REPLY */
    uint8_t actuators;                     /* HELLO_REPLY */
} imps_frame;

uint16_t imps_crc16(const uint8_t *data, size_t len);

/* COBS-encode len bytes into out (needs len + len / 254 + 1 bytes); no delimiter. Returns bytes written. */
size_t imps_cobs_encode(const uint8_t *in, size_t len, uint8_t *out);
/* Decode one chunk (no delimiter) into out; returns the decoded length or IMPS_ERR_COBS / IMPS_ERR_LONG. */
int imps_cobs_decode(const uint8_t *in, size_t len, uint8_t *out, size_t cap);

/* Frame -> wire bytes (COBS chunk + 0x00). Returns the length, or 0 if the frame is invalid or cap too small. */
size_t imps_encode_frame(const imps_frame *frame, uint8_t *out, size_t cap);
/* One COBS chunk (delimiter stripped) -> frame. Returns IMPS_OK or an IMPS_ERR_*. */
int imps_decode_frame(const uint8_t *chunk, size_t len, imps_frame *frame);

/* Fixed point: u16 0..65535 means 0..1. A 10-bit ADC reading maps exactly onto 0..65535. */
static inline uint16_t imps_adc10_to_fixed(uint16_t adc) {
    return (uint16_t)((adc << 6) | (adc >> 4));
}

/* Streaming receiver: push bytes one at a time; counters like the Python Decoder. */
typedef struct {
    uint8_t buf[IMPS_MAX_ENCODED];
    uint8_t len;
    uint8_t overflow;
    uint8_t lost;
    int16_t last_seq;        /* -1: none yet */
    uint16_t frames, crc_errors, bad_frames, resyncs, seq_gaps;
} imps_rx;

void imps_rx_init(imps_rx *rx);
/* Returns IMPS_OK when byte completes a valid frame (written to *frame), IMPS_NONE while
 * collecting, or the IMPS_ERR_* of a rejected chunk (already counted). */
int imps_rx_push(imps_rx *rx, uint8_t byte, imps_frame *frame);

#ifdef __cplusplus
}
#endif

#endif /* IMPS_PROTOCOL_H */
