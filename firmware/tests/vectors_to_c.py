#!/usr/bin/env python3
"""Turn firmware/vectors.json into a C header for the host tests.

Usage: vectors_to_c.py VECTORS.json OUT.h   (run by `make firmware-test`)
Standard library only, so it runs with any python3.
"""
import json
import sys

ERRORS = {"cobs": "IMPS_ERR_COBS", "short": "IMPS_ERR_SHORT", "crc": "IMPS_ERR_CRC", "type": "IMPS_ERR_TYPE",
          "count": "IMPS_ERR_COUNT", "length": "IMPS_ERR_LENGTH", "long": "IMPS_ERR_LONG"}
TYPES = {"sensor": "IMPS_SENSOR", "actuator": "IMPS_ACTUATOR", "hello": "IMPS_HELLO", "hello_reply": "IMPS_HELLO_REPLY"}


def c_bytes(hexstr):
    data = bytes.fromhex(hexstr)
    return "{" + ", ".join(f"0x{b:02x}" for b in data) + ("" if data else "0") + "}", len(data)


def c_str(s):
    return json.dumps(s)  # a JSON string of ASCII text is a valid C string literal


def expect(f, out, tag):
    """Emit the arrays of one expected frame; return its initializer."""
    values = f.get("values", [])
    out.append(f"static const uint16_t {tag}_values[] = {{{', '.join(map(str, values)) or '0'}}};")
    b = f.get("board", {"protocol": 0, "firmware": [0, 0], "channels": len(values), "actuators": 0})
    count = b["channels"] if f["type"] == "hello_reply" else len(values)
    return (f"{{{TYPES[f['type']]}, {f['seq']}, {count}, {tag}_values, "
            f"{b['protocol']}, {b['firmware'][0]}, {b['firmware'][1]}, {b['actuators']}}}")


def main(src, dst):
    v = json.load(open(src))
    out = ["/* Generated from firmware/vectors.json by vectors_to_c.py: do not edit. */",
           "#include <stddef.h>", "#include <stdint.h>", '#include "imps_protocol.h"', "",
           "typedef struct { uint8_t type, seq, count; const uint16_t *values;"
           " uint8_t protocol, fw_major, fw_minor, actuators; } expect_frame;",
           "typedef struct { const char *name; const uint8_t *data; size_t len; uint16_t crc; } crc_vec;",
           "typedef struct { const uint8_t *raw; size_t raw_len; const uint8_t *enc; size_t enc_len; } cobs_vec;",
           "typedef struct { const char *name; const uint8_t *wire; size_t len; int ok; int error;"
           " expect_frame frame; } frame_vec;",
           "typedef struct { const char *name; const uint8_t *wire; size_t len; size_t n_frames;"
           " const expect_frame *frames; unsigned frames_ok, crc_errors, bad_frames, resyncs, seq_gaps; } stream_vec;",
           ""]
    rows = []
    for i, c in enumerate(v["crc16"]["checks"]):
        arr, n = c_bytes(c["data"])
        out.append(f"static const uint8_t crc{i}[] = {arr};")
        rows.append(f"  {{{c_str(c['data'])}, crc{i}, {n}, {c['crc']}}},")
    out += ["static const crc_vec CRC_VECS[] = {", *rows, "};"]
    rows = []
    for i, c in enumerate(v["cobs"]):
        raw, rn = c_bytes(c["raw"])
        enc, en = c_bytes(c["encoded"])
        out.append(f"static const uint8_t cobs_raw{i}[] = {raw};")
        out.append(f"static const uint8_t cobs_enc{i}[] = {enc};")
        rows.append(f"  {{cobs_raw{i}, {rn}, cobs_enc{i}, {en}}},")
    out += ["static const cobs_vec COBS_VECS[] = {", *rows, "};"]
    rows = []
    for i, f in enumerate(v["frames"]):
        wire, n = c_bytes(f["wire"])
        out.append(f"static const uint8_t frame_wire{i}[] = {wire};")
        if f["ok"]:
            exp = expect(f["frame"], out, f"frame{i}")
            rows.append(f"  {{{c_str(f['name'])}, frame_wire{i}, {n}, 1, IMPS_OK, {exp}}},")
        else:
            rows.append(f"  {{{c_str(f['name'])}, frame_wire{i}, {n}, 0, {ERRORS[f['error']]}, {{0}}}},")
    out += ["static const frame_vec FRAME_VECS[] = {", *rows, "};"]
    rows = []
    for i, s in enumerate(v["streams"]):
        wire, n = c_bytes(s["wire"])
        out.append(f"static const uint8_t stream_wire{i}[] = {wire};")
        exps = [expect(f, out, f"stream{i}_{j}") for j, f in enumerate(s["frames"])]
        out.append(f"static const expect_frame stream{i}_frames[] = {{{', '.join(exps) or '{0}'}}};")
        c = s["counters"]
        rows.append(f"  {{{c_str(s['name'])}, stream_wire{i}, {n}, {len(exps)}, stream{i}_frames, "
                    f"{c['frames']}, {c['crc_errors']}, {c['bad_frames']}, {c['resyncs']}, {c['seq_gaps']}}},")
    out += ["static const stream_vec STREAM_VECS[] = {", *rows, "};", ""]
    out.append(f"#define VEC_PROTOCOL_VERSION {v['protocol_version']}")
    out.append(f"#define VEC_MAX_CHANNELS {v['max_channels']}")
    adc = ", ".join(f"{{{a['adc']}, {a['fixed']}}}" for a in v["adc10"])
    out.append(f"static const uint16_t ADC10_VECS[][2] = {{{adc}}};")
    with open(dst, "w") as fh:
        fh.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:3])
