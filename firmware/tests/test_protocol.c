/* Host tests of firmware/src/imps_protocol.c against the shared vectors (firmware/vectors.json).
 * Build and run: make firmware-test. Prints one line per failure and a summary; exit 1 on any failure. */
#include <stdio.h>
#include <string.h>

#include "imps_protocol.h"
#include "vectors.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static int checks, failures;

#define CHECK(cond, ...)                                     \
    do {                                                     \
        checks++;                                            \
        if (!(cond)) {                                       \
            failures++;                                      \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);      \
            printf(__VA_ARGS__);                             \
            printf("\n");                                    \
        }                                                    \
    } while (0)

static int same_frame(const imps_frame *f, const expect_frame *e) {
    if (f->type != e->type || f->seq != e->seq || f->count != e->count) return 0;
    if (f->type == IMPS_HELLO_REPLY)
        return f->protocol == e->protocol && f->fw_major == e->fw_major && f->fw_minor == e->fw_minor &&
               f->actuators == e->actuators;
    for (uint8_t i = 0; i < f->count && f->type != IMPS_HELLO; i++)
        if (f->values[i] != e->values[i]) return 0;
    return 1;
}

static void to_frame(const expect_frame *e, imps_frame *f) {
    memset(f, 0, sizeof *f);
    f->type = e->type;
    f->seq = e->seq;
    f->count = e->count;
    for (uint8_t i = 0; i < e->count && (e->type == IMPS_SENSOR || e->type == IMPS_ACTUATOR); i++)
        f->values[i] = e->values[i];
    f->protocol = e->protocol;
    f->fw_major = e->fw_major;
    f->fw_minor = e->fw_minor;
    f->actuators = e->actuators;
}

static void test_crc(void) {
    for (size_t i = 0; i < N(CRC_VECS); i++) {
        uint16_t got = imps_crc16(CRC_VECS[i].data, CRC_VECS[i].len);
        CHECK(got == CRC_VECS[i].crc, "crc16(%s) = 0x%04X, want 0x%04X", CRC_VECS[i].name, got, CRC_VECS[i].crc);
    }
}

static void test_cobs(void) {
    for (size_t i = 0; i < N(COBS_VECS); i++) {
        uint8_t buf[64];
        size_t n = imps_cobs_encode(COBS_VECS[i].raw, COBS_VECS[i].raw_len, buf);
        CHECK(n == COBS_VECS[i].enc_len && memcmp(buf, COBS_VECS[i].enc, n) == 0, "cobs encode vector %zu", i);
        int d = imps_cobs_decode(COBS_VECS[i].enc, COBS_VECS[i].enc_len, buf, sizeof buf);
        CHECK(d == (int)COBS_VECS[i].raw_len && memcmp(buf, COBS_VECS[i].raw, (size_t)d) == 0,
              "cobs decode vector %zu: got %d", i, d);
    }
}

static void test_frames(void) {
    for (size_t i = 0; i < N(FRAME_VECS); i++) {
        const frame_vec *v = &FRAME_VECS[i];
        imps_frame f;
        int status = imps_decode_frame(v->wire, v->len - 1, &f);  /* strip the delimiter */
        CHECK(status == v->error, "decode '%s': status %d, want %d", v->name, status, v->error);
        if (!v->ok) continue;
        CHECK(status == IMPS_OK && same_frame(&f, &v->frame), "decode '%s': fields differ", v->name);
        imps_frame src;
        uint8_t wire[IMPS_MAX_WIRE];
        to_frame(&v->frame, &src);
        size_t n = imps_encode_frame(&src, wire, sizeof wire);
        CHECK(n == v->len && memcmp(wire, v->wire, n) == 0, "encode '%s': %zu bytes, want %zu identical", v->name,
              n, v->len);
    }
}

static void test_streams(void) {
    for (size_t i = 0; i < N(STREAM_VECS); i++) {
        const stream_vec *v = &STREAM_VECS[i];
        imps_rx rx;
        imps_frame f;
        size_t got = 0;
        imps_rx_init(&rx);
        for (size_t b = 0; b < v->len; b++) {
            if (imps_rx_push(&rx, v->wire[b], &f) != IMPS_OK) continue;
            CHECK(got < v->n_frames && same_frame(&f, &v->frames[got]), "stream '%s': frame %zu differs", v->name,
                  got);
            got++;
        }
        CHECK(got == v->n_frames, "stream '%s': %zu frames, want %zu", v->name, got, v->n_frames);
        CHECK(rx.frames == v->frames_ok && rx.crc_errors == v->crc_errors && rx.bad_frames == v->bad_frames &&
                  rx.resyncs == v->resyncs && rx.seq_gaps == v->seq_gaps,
              "stream '%s': counters frames=%u crc=%u bad=%u resyncs=%u gaps=%u, want %u %u %u %u %u", v->name,
              rx.frames, rx.crc_errors, rx.bad_frames, rx.resyncs, rx.seq_gaps, v->frames_ok, v->crc_errors,
              v->bad_frames, v->resyncs, v->seq_gaps);
    }
}

static void test_limits(void) {
    CHECK(VEC_PROTOCOL_VERSION == IMPS_PROTOCOL_VERSION, "protocol version %d vs vectors %d", IMPS_PROTOCOL_VERSION,
          VEC_PROTOCOL_VERSION);
    CHECK(VEC_MAX_CHANNELS == IMPS_MAX_CHANNELS, "max channels %d vs vectors %d", IMPS_MAX_CHANNELS,
          VEC_MAX_CHANNELS);
    for (size_t i = 0; i < N(ADC10_VECS); i++)
        CHECK(imps_adc10_to_fixed(ADC10_VECS[i][0]) == ADC10_VECS[i][1], "adc10 %u -> %u, want %u", ADC10_VECS[i][0],
              imps_adc10_to_fixed(ADC10_VECS[i][0]), ADC10_VECS[i][1]);
    /* An invalid frame is refused by the encoder rather than sent. */
    imps_frame f;
    uint8_t wire[IMPS_MAX_WIRE];
    memset(&f, 0, sizeof f);
    f.type = IMPS_SENSOR;
    f.count = IMPS_MAX_CHANNELS + 1;
    CHECK(imps_encode_frame(&f, wire, sizeof wire) == 0, "encoder accepted %d channels", f.count);
    f.count = IMPS_MAX_CHANNELS;
    CHECK(imps_encode_frame(&f, wire, 10) == 0, "encoder overran a 10-byte buffer");
    CHECK(imps_encode_frame(&f, wire, sizeof wire) > 0, "encoder refused a full frame in IMPS_MAX_WIRE bytes");
    /* Every byte value pushed at the receiver never yields more than it counts. */
    imps_rx rx;
    imps_rx_init(&rx);
    unsigned chunks = 0, len = 0;
    uint32_t x = 12345;
    for (int i = 0; i < 200000; i++) {
        x = x * 1103515245u + 12345u;
        uint8_t b = (uint8_t)(x >> 16);
        if ((x >> 8) % 7 == 0) b = 0;
        if (b == 0) {
            if (len) chunks++;
            len = 0;
        } else {
            len++;
        }
        imps_rx_push(&rx, b, &f);
    }
    CHECK((unsigned)(rx.frames + rx.crc_errors + rx.bad_frames) == chunks, "noise: %u + %u + %u != %u chunks", rx.frames,
          rx.crc_errors, rx.bad_frames, chunks);
}

int main(void) {
    test_crc();
    test_cobs();
    test_frames();
    test_streams();
    test_limits();
    printf("imps_protocol host tests: %d checks, %d failures (%zu frame vectors, %zu stream vectors)\n", checks,
           failures, N(FRAME_VECS), N(STREAM_VECS));
    return failures ? 1 : 0;
}
