"""The Python serial codec against the shared vectors, plus property tests."""
import binascii
import json
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from imps.errors import SerialFrameError
from imps.io.serial_frames import (
    MAX_CHANNELS, MAX_ENCODED, PROTOCOL_VERSION, BoardInfo, Decoder, Frame, FrameType, LineDecoder,
    cobs_decode, cobs_encode, crc16, decode_frame, encode_frame, from_fixed, parse_text_line, sensor_frame,
    to_fixed,
)

VECTORS = json.loads((Path(__file__).parent.parent / "firmware" / "vectors.json").read_text())


def frame_from_json(d):
    kind = FrameType[d["type"].upper()]
    board = None
    if "board" in d:
        b = d["board"]
        board = BoardInfo(b["protocol"], tuple(b["firmware"]), b["channels"], b["actuators"])
    return Frame(kind, d["seq"], tuple(d.get("values", ())), board)


def test_vectors_match_this_codec_version():
    assert VECTORS["protocol_version"] == PROTOCOL_VERSION
    assert VECTORS["max_channels"] == MAX_CHANNELS


def bitwise_crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE written out bit by bit (the box's own until binascii took over)."""
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def test_crc16_is_the_bitwise_crc_on_random_frames():
    """binascii.crc_hqx gives the bitwise loop's value on 1,000 random raw frames of every length;
    the speed ratio is printed (a figure, not a check: run with -s)."""
    import random
    import timeit
    rng = random.Random(24)
    frames = [rng.randbytes(rng.randint(0, 3 + 2 * MAX_CHANNELS)) for _ in range(1000)]
    assert [crc16(f) for f in frames] == [bitwise_crc16(f) for f in frames]
    slow = min(timeit.repeat(lambda: [bitwise_crc16(f) for f in frames], number=1, repeat=3))
    fast = min(timeit.repeat(lambda: [crc16(f) for f in frames], number=1, repeat=3))
    print(f"\ncrc16 on 1,000 random frames: bitwise {slow * 1e3:.1f} ms, crc_hqx {fast * 1e3:.2f} ms, "
          f"{slow / fast:.0f}x faster")


@pytest.mark.parametrize("check", VECTORS["crc16"]["checks"], ids=lambda c: c["data"] or "empty")
def test_crc16_vectors(check):
    data = bytes.fromhex(check["data"])
    assert crc16(data) == check["crc"]
    assert binascii.crc_hqx(data, 0xFFFF) == check["crc"]  # an independent implementation agrees


@pytest.mark.parametrize("v", VECTORS["cobs"], ids=lambda v: v["raw"] or "empty")
def test_cobs_vectors(v):
    assert cobs_encode(bytes.fromhex(v["raw"])).hex() == v["encoded"]
    assert cobs_decode(bytes.fromhex(v["encoded"])).hex() == v["raw"]


@pytest.mark.parametrize("v", VECTORS["frames"], ids=lambda v: v["name"])
def test_frame_vectors(v):
    wire = bytes.fromhex(v["wire"])
    assert wire.endswith(b"\x00") and b"\x00" not in wire[:-1]
    if v["ok"]:
        frame = frame_from_json(v["frame"])
        assert decode_frame(wire[:-1]) == frame
        assert encode_frame(frame) == wire
    else:
        with pytest.raises(SerialFrameError) as err:
            decode_frame(wire[:-1])
        assert err.value.reason == v["error"]
        assert isinstance(err.value, ValueError)


@pytest.mark.parametrize("v", VECTORS["streams"], ids=lambda v: v["name"])
@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_stream_vectors_in_any_chunking(v, chunk):
    wire = bytes.fromhex(v["wire"])
    d = Decoder()
    got = []
    for i in range(0, len(wire), chunk):
        got += d.feed(wire[i:i + chunk])
    assert got == [frame_from_json(f) for f in v["frames"]]
    counts = d.counts()
    assert counts.pop("bytes") == len(wire)
    assert counts == v["counters"]


@pytest.mark.parametrize("v", VECTORS["fixed_point"])
def test_fixed_point(v):
    assert to_fixed(v["value"]) == v["fixed"]
    assert abs(from_fixed(v["fixed"]) - v["value"]) < 1e-4


def test_fixed_point_clips_and_handles_nan():
    assert to_fixed(-0.5) == 0 and to_fixed(7.0) == 65535 and to_fixed(float("nan")) == 0


def test_error_messages_say_what_and_why():
    with pytest.raises(SerialFrameError, match="CRC mismatch.*0x"):
        decode_frame(bytes.fromhex(VECTORS["frames"][9]["wire"])[:-1])
    with pytest.raises(SerialFrameError, match="unknown frame type 0x09"):
        decode_frame(bytes.fromhex("020901030d52"))


def test_decoder_reset_forgets_partial_chunk_and_sequence_keeps_counters():
    d = Decoder()
    d.feed(sensor_frame(5, [0.1]))
    d.feed(b"\x05\x01\x02")  # a partial frame, then the port is reopened
    d.reset()
    frames = d.feed(sensor_frame(200, [0.2]))
    assert [f.seq for f in frames] == [200]
    assert d.frames == 2 and d.seq_gaps == 0 and d.bad_frames == 0


# -- properties ---------------------------------------------------------------

frames_st = st.builds(
    lambda seq, vals: Frame(FrameType.SENSOR, seq, tuple(vals)),
    st.integers(0, 255), st.lists(st.integers(0, 65535), max_size=MAX_CHANNELS))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.integers(1, 64))
def test_any_byte_stream_never_crashes_and_counters_add_up(data, chunk):
    d = Decoder()
    got = []
    for i in range(0, len(data), chunk):
        got += d.feed(data[i:i + chunk])
    chunks = [c for c in data.split(b"\x00")[:-1] if c]  # only delimited, non-empty chunks count
    assert d.frames == len(got)
    assert d.frames + d.crc_errors + d.bad_frames == len(chunks)
    assert d.resyncs <= d.frames and d.bytes == len(data)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(frames_st, st.binary(max_size=80)), min_size=1, max_size=12), st.integers(1, 50))
def test_valid_frames_in_noise_are_all_recovered(items, chunk):
    # Noise is cut off by a delimiter before each frame (as a real line settles between frames);
    # every frame must come out, in order, whatever the noise and however the bytes are chunked.
    stream = b"".join(noise + b"\x00" + encode_frame(frame) for frame, noise in items)
    d = Decoder()
    got = []
    for i in range(0, len(stream), chunk):
        got += d.feed(stream[i:i + chunk])
    frames = [f for f, _ in items]
    # noise that happens to contain a valid frame may add extra frames; ours are all there, in order
    it = iter(got)
    assert all(any(g == f for g in it) for f in frames)
    noise_chunks = sum(len([c for c in noise.split(b"\x00") if c]) for _, noise in items)
    assert d.frames + d.crc_errors + d.bad_frames == len(frames) + noise_chunks


@settings(max_examples=200, deadline=None)
@given(frames_st)
def test_encode_decode_roundtrip(frame):
    wire = encode_frame(frame)
    assert len(wire) <= MAX_ENCODED + 1 and b"\x00" not in wire[:-1]
    assert decode_frame(wire[:-1]) == frame


def test_sequence_gaps_counted_across_wrap():
    d = Decoder()
    d.feed(b"".join(sensor_frame(s, [0.5]) for s in (250, 251, 255, 1)))
    assert d.seq_gaps == 3 + 1  # 252..254 missing, then 0 missing


# -- text lines ---------------------------------------------------------------

def test_text_lines_parse_skip_blank_and_count_bad():
    d = LineDecoder()
    got = d.feed(b"0.1,0.5,0.9\r\n\n1,2")
    got += d.feed(b",3\nhello,world\n" + b"9" * 300 + b"\n0.25\n")
    assert got == [[0.1, 0.5, 0.9], [1.0, 2.0, 3.0], [0.25]]
    assert d.lines == 3 and d.bad_lines == 2
    d = LineDecoder()
    assert d.feed(b"x,1\n") == [] and "not comma-separated numbers" in d.last_error


def test_parse_text_line_errors():
    for bad in (b"", b"a,b", b"1,nan", b"\xff\xfe", ",".join(["0"] * 17).encode()):
        with pytest.raises(SerialFrameError):
            parse_text_line(bad)
    assert parse_text_line(" 0.5 , 1e-1 ") == [0.5, 0.1]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=1000))
def test_text_decoder_never_crashes(data):
    d = LineDecoder()
    lines = d.feed(data)
    assert d.lines == len(lines)
    assert d.lines + d.bad_lines <= data.count(b"\n")
