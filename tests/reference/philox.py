"""Philox4x32-10 draws of src/hd_math.h and src/rng.c, vectorised in numpy.

A draw is a pure function of (seed, stream, index), with the layout of
hd_rng_block: Philox key = seed (low word first), counter words 0-1 = block
index, words 2-3 = stream. Uniform and integer draw i read word i&3 of block
i>>2; normal draw i is one half (even i cosine, odd i sine) of the Box-Muller
pair of block i>>1. Float math is done in float32 like the C code (numpy's
transcendentals are rounded from double, so a normal draw may differ from
glibc's logf/cosf/sinf result by an ulp).

    python3 tests/reference/philox.py   # self-test (KAT vectors + C program)
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

M0, M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
W0, W1 = 0x9E3779B9, 0xBB67AE85
MASK32 = np.uint64(0xFFFFFFFF)
U32 = np.uint64(32)

# rng.h RngPurpose
RNG_INIT, RNG_DATA_ORDER, RNG_AUGMENT, RNG_DROPOUT, RNG_REPARAM = 1, 2, 3, 4, 5
RNG_LATENT, RNG_CLASS_DRAW, RNG_PATCH, RNG_SYNTH = 6, 7, 8, 9


def rng_stream(purpose, a, b):
    """rng.c: purpose<<56 | a<<32 | b (a < 2^24, b < 2^32)."""
    assert 1 <= purpose < 10 and 0 <= a < (1 << 24) and 0 <= b < (1 << 32)
    return (purpose << 56) | (a << 32) | b


def philox4x32_10(c0, c1, c2, c3, k0, k1):
    """Ten rounds over arrays of uint32 counter words (as uint64 arrays); keys are ints."""
    c = [np.asarray(x, dtype=np.uint64) & MASK32 for x in (c0, c1, c2, c3)]
    k0, k1 = int(k0) & 0xFFFFFFFF, int(k1) & 0xFFFFFFFF
    for _ in range(10):
        p0 = M0 * c[0]  # < 2^64: exact in uint64
        p1 = M1 * c[2]
        hi0, lo0 = p0 >> U32, p0 & MASK32
        hi1, lo1 = p1 >> U32, p1 & MASK32
        c = [hi1 ^ c[1] ^ np.uint64(k0), lo1, hi0 ^ c[3] ^ np.uint64(k1), lo0]
        k0 = (k0 + W0) & 0xFFFFFFFF
        k1 = (k1 + W1) & 0xFFFFFFFF
    return [x.astype(np.uint32) for x in c]


def rng_block(seed, stream, block):
    """hd_rng_block for an array of block indices: list of 4 uint32 arrays."""
    block = np.asarray(block, dtype=np.uint64)
    stream = int(stream)
    seed = int(seed)
    return philox4x32_10(block & MASK32, block >> U32,
                         np.full(block.shape, stream & 0xFFFFFFFF, np.uint64),
                         np.full(block.shape, stream >> 32, np.uint64),
                         seed & 0xFFFFFFFF, seed >> 32)


def u32_to_unit(u):
    """hd_u32_to_unit: ((u >> 9) + 0.5) / 2^23 in float32, inside (0, 1)."""
    u = np.asarray(u, dtype=np.uint32)
    return ((u >> np.uint32(9)).astype(np.float32) + np.float32(0.5)) * np.float32(1.0 / 8388608.0)


def _word(blocks, sel):
    w = np.stack(blocks, axis=0)  # (4, n)
    return np.take_along_axis(w, sel[None, :].astype(np.int64), axis=0)[0]


def rng_uniform(seed, stream, index):
    """hd_rng_uniform(seed, stream, i) for an array of indices i (float32)."""
    i = np.asarray(index, dtype=np.uint64).ravel()
    b = rng_block(seed, stream, i >> np.uint64(2))
    out = u32_to_unit(_word(b, i & np.uint64(3)))
    return out.reshape(np.shape(index))


def rng_normal(seed, stream, index):
    """hd_rng_normal: Box-Muller in float32 (even i cosine, odd i sine)."""
    i = np.asarray(index, dtype=np.uint64).ravel()
    b = rng_block(seed, stream, i >> np.uint64(1))
    u1 = u32_to_unit(b[0])
    u2 = u32_to_unit(b[1])
    # log/sin/cos evaluated in double then rounded: closest to glibc's logf,
    # sinf, cosf (differs from the C draw in ~1.5% of draws, by 1 ulp)
    lg = np.log(u1.astype(np.float64)).astype(np.float32)
    r = np.sqrt(np.float32(-2.0) * lg).astype(np.float32)
    a = (np.float32(6.2831853071795864) * u2).astype(np.float32)
    odd = (i & np.uint64(1)).astype(bool)
    sn = np.sin(a.astype(np.float64)).astype(np.float32)
    cs = np.cos(a.astype(np.float64)).astype(np.float32)
    out = np.where(odd, r * sn, r * cs).astype(np.float32)
    return out.reshape(np.shape(index))


def rng_uint_below(seed, stream, index, n):
    """hd_rng_uint_below: Lemire multiply-shift with rejection; attempt k reads
    word i&3 of block (i >> 2) + k * 2^56."""
    n = int(n)
    assert 1 <= n < (1 << 32)
    i = np.asarray(index, dtype=np.uint64).ravel()
    t = ((1 << 32) - n) % n  # (0u - n) % n in uint32
    out = np.zeros(i.shape, dtype=np.uint32)
    todo = np.arange(i.size)
    k = 0
    while todo.size:
        ii = i[todo]
        b = rng_block(seed, stream, (ii >> np.uint64(2)) + np.uint64(k << 56))
        m = _word(b, ii & np.uint64(3)).astype(np.uint64) * np.uint64(n)
        ok = (m & MASK32) >= np.uint64(t)
        out[todo[ok]] = (m[ok] >> U32).astype(np.uint32)
        todo = todo[~ok]
        k += 1
    return out.reshape(np.shape(index))


# ---------------------------------------------------------------- self-test

KAT = [  # Random123 kat_vectors "philox4x32 10": ctr(4), key(2), out(4)
    (0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8),
    (0xffffffff,) * 6 + (0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd),
    (0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0,
     0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1),
]

C_PROG = r"""
#include <stdio.h>
#include <inttypes.h>
#include "hd_math.h"
int main(void) {
    uint64_t seeds[3] = {7ull, 0x0123456789abcdefull, 1ull};
    uint64_t streams[3] = {(5ull << 56) | (2ull << 32) | 1ull, 77ull, (7ull << 56) | (3ull << 32)};
    uint64_t idx[8] = {0, 1, 2, 3, 5, 1001, (2ull << 32) + 17, (101ull << 32) + 123457};
    uint32_t ns[4] = {14, 182, 3000000001u, 1};
    for (int s = 0; s < 3; s++)
        for (int k = 0; k < 8; k++) {
            printf("%.9g %.9g", hd_rng_uniform(seeds[s], streams[s], idx[k]),
                   hd_rng_normal(seeds[s], streams[s], idx[k]));
            for (int q = 0; q < 4; q++)
                printf(" %u", hd_rng_uint_below(seeds[s], streams[s], idx[k], ns[q]));
            printf("\n");
        }
    for (uint64_t i = 0; i < 4096; i++)  // a bulk run of normal draws
        printf("%.9g\n", hd_rng_normal(7, (6ull << 56) | (4ull << 32) | 3, (3ull << 32) + i));
    return 0;
}
"""


def selftest():
    ok = True
    for t in KAT:
        r = philox4x32_10(*[np.array([x], np.uint64) for x in t[:4]], t[4], t[5])
        got = [int(x[0]) for x in r]
        if got != list(t[6:]):
            print("KAT mismatch", [hex(g) for g in got]); ok = False
        blk = (t[1] << 32) | t[0]; strm = (t[3] << 32) | t[2]; sd = (t[5] << 32) | t[4]
        r2 = [int(x[0]) for x in rng_block(sd, strm, np.array([blk], np.uint64))]
        if r2 != list(t[6:]):
            print("KAT via rng_block mismatch"); ok = False
    u = rng_uniform(0, 0, np.arange(4))
    if not np.array_equal(u, u32_to_unit(np.array(KAT[0][6:], np.uint32))):
        print("uniform layout mismatch"); ok = False
    if u32_to_unit(np.array([0], np.uint32))[0] != np.float32(2.0 ** -24):
        print("u32_to_unit(0)"); ok = False

    # against the C functions themselves
    src = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "src"))
    with tempfile.TemporaryDirectory() as d:
        cf, exe = os.path.join(d, "p.c"), os.path.join(d, "p")
        open(cf, "w").write(C_PROG)
        subprocess.run(["gcc", "-O2", "-std=c11", "-I" + src, cf, "-o", exe, "-lm"], check=True)
        lines = subprocess.run([exe], check=True, capture_output=True, text=True).stdout.split("\n")
    seeds = [7, 0x0123456789abcdef, 1]
    streams = [(5 << 56) | (2 << 32) | 1, 77, (7 << 56) | (3 << 32)]
    idx = np.array([0, 1, 2, 3, 5, 1001, (2 << 32) + 17, (101 << 32) + 123457], np.uint64)
    ns = [14, 182, 3000000001, 1]
    row = 0
    worst = 0.0
    for s in range(3):
        uu = rng_uniform(seeds[s], streams[s], idx)
        nn = rng_normal(seeds[s], streams[s], idx)
        ints = [rng_uint_below(seeds[s], streams[s], idx, n) for n in ns]
        for k in range(8):
            f = lines[row].split(); row += 1
            if np.float32(float(f[0])) != uu[k]:
                print("uniform mismatch", s, k, f[0], uu[k]); ok = False
            worst = max(worst, abs(float(f[1]) - float(nn[k])))
            for q in range(4):
                if int(f[2 + q]) != int(ints[q][k]):
                    print("uint_below mismatch", s, k, ns[q], f[2 + q], ints[q][k]); ok = False
    bulk = np.array([float(x) for x in lines[row:row + 4096]])
    nb = rng_normal(7, (6 << 56) | (4 << 32) | 3, np.arange(4096, dtype=np.uint64) + np.uint64(3 << 32))
    worst = max(worst, float(np.abs(bulk - nb).max()))
    if worst > 1e-5:
        print("normal mismatch", worst); ok = False
    # rejection path: n = 3000000001 rejects often (t = 2^32 mod n is large)
    print("philox selftest:", "OK" if ok else "FAILED", "(max |normal - C| = %.2e)" % worst)
    return ok


if __name__ == "__main__":
    sys.exit(0 if selftest() else 1)
