#!/usr/bin/env python3
"""Independent reader of TensorBoard event files (Python stdlib only).

Used by tests/test_tb_events.c to check src/tb_events.c with code that shares
nothing with it: its own bitwise CRC-32C, its own protobuf wire-format parser.

    tb_read.py FILE

prints one line per Event, tab-separated:
    wall_time  step  file_version  tag  simple_value
("-" for a missing field; floats as Python repr, which reads back exactly).
Exits 1 with a message on a CRC mismatch, a truncated record or a malformed
protobuf.
"""
import struct
import sys


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def masked(crc):
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def varint(buf, pos):
    shift = value = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos
        if shift >= 70:
            raise ValueError("varint too long")


def fields(buf):
    """Protobuf message -> {field number: [(wire type, value), ...]}."""
    out, pos = {}, 0
    while pos < len(buf):
        key, pos = varint(buf, pos)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, pos = varint(buf, pos)
        elif wt == 1:
            val, pos = buf[pos:pos + 8], pos + 8
        elif wt == 5:
            val, pos = buf[pos:pos + 4], pos + 4
        elif wt == 2:
            n, pos = varint(buf, pos)
            val, pos = buf[pos:pos + n], pos + n
        else:
            raise ValueError("unsupported wire type %d" % wt)
        if pos > len(buf):
            raise ValueError("field %d runs past the message" % num)
        out.setdefault(num, []).append((wt, val))
    return out


def one(msg, num, wt):
    vals = msg.get(num, [])
    if len(vals) > 1:
        raise ValueError("field %d repeated" % num)
    if vals and vals[0][0] != wt:
        raise ValueError("field %d has wire type %d, want %d" % (num, vals[0][0], wt))
    return vals[0][1] if vals else None


def event_line(data):
    ev = fields(data)
    wall = one(ev, 1, 1)
    step = one(ev, 2, 0)
    version = one(ev, 3, 2)
    tag = value = None
    summary = one(ev, 5, 2)
    if summary is not None:
        values = fields(summary).get(1, [])
        if len(values) != 1 or values[0][0] != 2:
            raise ValueError("want exactly one Summary.value")
        val = fields(values[0][1])
        tag = one(val, 1, 2).decode("utf-8")
        value = struct.unpack("<f", one(val, 2, 5))[0]
    if step is not None and step >= 1 << 63:
        step -= 1 << 64  # int64 two's complement
    cols = [repr(struct.unpack("<d", wall)[0]) if wall is not None else None,
            str(step) if step is not None else None,
            version.decode("utf-8") if version is not None else None,
            tag,
            repr(value) if value is not None else None]
    return "\t".join("-" if c is None else c for c in cols)


def main(path):
    buf = open(path, "rb").read()
    pos = 0
    while pos < len(buf):
        if pos + 12 > len(buf):
            raise ValueError("truncated record header at %d" % pos)
        head = buf[pos:pos + 8]
        (n,) = struct.unpack("<Q", head)
        (hcrc,) = struct.unpack("<I", buf[pos + 8:pos + 12])
        if masked(crc32c(head)) != hcrc:
            raise ValueError("length CRC mismatch at %d" % pos)
        data = buf[pos + 12:pos + 12 + n]
        if len(data) != n or pos + 16 + n > len(buf):
            raise ValueError("truncated record at %d" % pos)
        (dcrc,) = struct.unpack("<I", buf[pos + 12 + n:pos + 16 + n])
        if masked(crc32c(data)) != dcrc:
            raise ValueError("data CRC mismatch at %d" % pos)
        print(event_line(data))
        pos += 16 + n


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except (ValueError, struct.error, UnicodeDecodeError) as e:
        sys.exit("tb_read.py: %s: %s" % (sys.argv[1], e))
