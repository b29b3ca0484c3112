/* IMPS serial frame protocol; see imps_protocol.h and firmware/PROTOCOL.md. */
#include "imps_protocol.h"

#include <string.h>

uint16_t imps_crc16(const uint8_t *data, size_t len) {
    uint16_t crc = 0xFFFF;
    while (len--) {
        crc ^= (uint16_t)(*data++) << 8;
        for (uint8_t bit = 0; bit < 8; bit++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

size_t imps_cobs_encode(const uint8_t *in, size_t len, uint8_t *out) {
    size_t code_at = 0, o = 1;
    uint8_t code = 1;
    for (size_t i = 0; i < len; i++) {
        if (in[i] == 0) {
            out[code_at] = code;
            code_at = o++;
            code = 1;
        } else {
            out[o++] = in[i];
            if (++code == 0xFF) {
                out[code_at] = code;
                code_at = o++;
                code = 1;
            }
        }
    }
    out[code_at] = code;
    return o;
}

int imps_cobs_decode(const uint8_t *in, size_t len, uint8_t *out, size_t cap) {
    size_t i = 0, o = 0;
    while (i < len) {
        uint8_t code = in[i];
        if (code == 0 || i + code > len) return IMPS_ERR_COBS;
        if (o + code - 1 > cap) return IMPS_ERR_LONG;
        memcpy(out + o, in + i + 1, code - 1);
        o += code - 1;
        i += code;
        if (code != 0xFF && i < len) {
            if (o >= cap) return IMPS_ERR_LONG;
            out[o++] = 0;
        }
    }
    return (int)o;
}

static size_t body_len(uint8_t type, uint8_t n) {
    if (type == IMPS_SENSOR || type == IMPS_ACTUATOR) return 2u * n;
    if (type == IMPS_HELLO) return 0;
    return IMPS_HELLO_BODY_LEN;
}

size_t imps_encode_frame(const imps_frame *f, uint8_t *out, size_t cap) {
    uint8_t raw[IMPS_MAX_RAW];
    size_t r = 0;
    if (f->type < IMPS_SENSOR || f->type > IMPS_HELLO_REPLY || f->count > IMPS_MAX_CHANNELS) return 0;
    raw[r++] = f->type;
    raw[r++] = f->seq;
    raw[r++] = f->type == IMPS_HELLO ? 0 : f->count;
    if (f->type == IMPS_HELLO_REPLY) {
        raw[r++] = f->protocol;
        raw[r++] = f->fw_major;
        raw[r++] = f->fw_minor;
        raw[r++] = f->actuators;
    } else if (f->type != IMPS_HELLO) {
        for (uint8_t i = 0; i < f->count; i++) {
            raw[r++] = (uint8_t)(f->values[i] & 0xFF);
            raw[r++] = (uint8_t)(f->values[i] >> 8);
        }
    }
    uint16_t crc = imps_crc16(raw, r);
    raw[r++] = (uint8_t)(crc & 0xFF);
    raw[r++] = (uint8_t)(crc >> 8);
    if (cap < r + r / 254 + 2) return 0;
    size_t n = imps_cobs_encode(raw, r, out);
    out[n++] = 0;
    return n;
}

int imps_decode_frame(const uint8_t *chunk, size_t len, imps_frame *f) {
    uint8_t raw[IMPS_MAX_ENCODED];
    if (len > IMPS_MAX_ENCODED) return IMPS_ERR_LONG;
    int n = imps_cobs_decode(chunk, len, raw, sizeof raw);
    if (n < 0) return n;
    if (n < IMPS_HEADER_LEN + IMPS_CRC_LEN) return IMPS_ERR_SHORT;
    uint16_t got = (uint16_t)(raw[n - 2] | (raw[n - 1] << 8));
    if (got != imps_crc16(raw, (size_t)n - 2)) return IMPS_ERR_CRC;
    uint8_t type = raw[0], count = raw[2];
    if (type < IMPS_SENSOR || type > IMPS_HELLO_REPLY) return IMPS_ERR_TYPE;
    if (count > IMPS_MAX_CHANNELS) return IMPS_ERR_COUNT;
    size_t blen = (size_t)n - IMPS_HEADER_LEN - IMPS_CRC_LEN;
    if (blen != body_len(type, count)) return IMPS_ERR_LENGTH;
    if (type == IMPS_HELLO && count != 0) return IMPS_ERR_COUNT;
    memset(f, 0, sizeof *f);
    f->type = type;
    f->seq = raw[1];
    f->count = count;
    const uint8_t *body = raw + IMPS_HEADER_LEN;
    if (type == IMPS_HELLO_REPLY) {
        f->protocol = body[0];
        f->fw_major = body[1];
        f->fw_minor = body[2];
        f->actuators = body[3];
    } else {
        for (uint8_t i = 0; i < count && type != IMPS_HELLO; i++)
            f->values[i] = (uint16_t)(body[2 * i] | (body[2 * i + 1] << 8));
    }
    return IMPS_OK;
}

void imps_rx_init(imps_rx *rx) {
    memset(rx, 0, sizeof *rx);
    rx->last_seq = -1;
}

static int rx_reject(imps_rx *rx, int status) {
    if (status == IMPS_ERR_CRC) rx->crc_errors++;
    else rx->bad_frames++;
    rx->lost = 1;
    return status;
}

int imps_rx_push(imps_rx *rx, uint8_t byte, imps_frame *frame) {
    if (byte != 0) {
        if (rx->overflow) return IMPS_NONE;
        if (rx->len >= sizeof rx->buf) {
            rx->overflow = 1;
            rx->len = 0;
        } else {
            rx->buf[rx->len++] = byte;
        }
        return IMPS_NONE;
    }
    if (rx->overflow) {
        rx->overflow = 0;
        return rx_reject(rx, IMPS_ERR_LONG);
    }
    if (rx->len == 0) return IMPS_NONE;
    int status = imps_decode_frame(rx->buf, rx->len, frame);
    rx->len = 0;
    if (status != IMPS_OK) return rx_reject(rx, status);
    rx->frames++;
    if (rx->lost) {
        rx->resyncs++;
        rx->lost = 0;
    }
    if (rx->last_seq >= 0) rx->seq_gaps += (uint8_t)(frame->seq - rx->last_seq - 1);
    rx->last_seq = frame->seq;
    return IMPS_OK;
}
