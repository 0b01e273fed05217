// Philox4x32-10 against the Random123 known answers, the counter layout of
// the draws, order independence of the fills, distribution statistics, the
// unbiased integer draw, and the stream-id bit layout.
#include <omp.h>
#include <string.h>

#include "common.h"
#include "rng.h"
#include "testing.h"

// Random123 distribution, tests/kat_vectors, "philox4x32 10" lines:
// counter words, key words, expected output words.
static const uint32_t KAT[3][10] = {
    {0, 0, 0, 0, 0, 0, 0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u},
    {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0x408f276du,
     0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu},
    {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u, 0xd16cfe09u,
     0x94fdccebu, 0x5001e420u, 0x24126ea1u},
};

static void test_known_answers(void) {
    for (int k = 0; k < 3; k++) {
        const uint32_t* t = KAT[k];
        Philox4 c = {{t[0], t[1], t[2], t[3]}};
        Philox4 r = hd_philox4x32_10(c, t[4], t[5]);
        for (int w = 0; w < 4; w++)
            CHECK(r.v[w] == t[6 + w], "KAT %d word %d: got %08x want %08x", k, w, r.v[w], t[6 + w]);
        // the same block through the (seed, stream, block) layout: low words first
        uint64_t block = ((uint64_t)t[1] << 32) | t[0];
        uint64_t stream = ((uint64_t)t[3] << 32) | t[2];
        uint64_t seed = ((uint64_t)t[5] << 32) | t[4];
        Philox4 b = hd_rng_block(seed, stream, block);
        CHECK(memcmp(&b, &r, sizeof b) == 0, "KAT %d through hd_rng_block", k);
    }
    // uniform draw i reads word i&3 of block i>>2 (the all-zero vector is block 0)
    for (uint64_t i = 0; i < 4; i++)
        CHECK(hd_rng_uniform(0, 0, i) == hd_u32_to_unit(KAT[0][6 + i]), "uniform draw %d layout",
              (int)i);
}

static void test_unit_interval(void) {
    // the extremes of the 32-bit input map strictly inside (0, 1)
    CHECK(hd_u32_to_unit(0) > 0.0f, "u32 0 -> %g", hd_u32_to_unit(0));
    CHECK(hd_u32_to_unit(0) == 0x1p-24f, "u32 0 -> 2^-24");
    for (uint32_t k = 0; k < 4096; k++) {
        float u = hd_u32_to_unit(0xffffffffu - k);
        if (!(u < 1.0f)) CHECK(0, "u32 %08x -> %g, not below 1", 0xffffffffu - k, u);
    }
    CHECK(hd_u32_to_unit(0xffffffffu) == 1.0f - 0x1p-24f, "u32 max -> 1 - 2^-24");
}

typedef void (*FillFn)(float*, size_t, uint64_t, uint64_t, uint64_t);

// One call over [0, n) must equal shuffled chunks, single draws in reverse
// order, and a single-threaded call, bit for bit.
static void check_order_independence(const char* what, FillFn fill) {
    enum { N = 10007 };
    const uint64_t seed = 0x0123456789abcdefull, stream = 77, off = 123456789;  // odd offset
    static float a[N], b[N];
    fill(a, N, seed, stream, off);

    // chunk starts drawn at random, visited in a shuffled order
    enum { C = 37 };
    size_t start[C + 1];
    start[0] = 0;
    for (int c = 1; c < C; c++) start[c] = rng_uint_below(5, 1, (uint64_t)c, N);
    start[C] = N;
    for (int c = 1; c < C; c++)  // insertion sort, ascending
        for (int d = c; d > 1 && start[d] < start[d - 1]; d--) {
            size_t t = start[d]; start[d] = start[d - 1]; start[d - 1] = t;
        }
    int order[C];
    for (int c = 0; c < C; c++) order[c] = c;
    for (int c = C - 1; c > 0; c--) {  // Fisher-Yates
        int j = (int)rng_uint_below(5, 2, (uint64_t)c, (uint32_t)c + 1);
        int t = order[c]; order[c] = order[j]; order[j] = t;
    }
    memset(b, 0, sizeof b);
    for (int c = 0; c < C; c++) {
        size_t s = start[order[c]], e = start[order[c] + 1];
        fill(b + s, e - s, seed, stream, off + s);
    }
    CHECK(memcmp(a, b, sizeof a) == 0, "%s: shuffled chunks differ from one call", what);

    memset(b, 0, sizeof b);
    for (size_t i = N; i-- > 0;) fill(b + i, 1, seed, stream, off + i);
    CHECK(memcmp(a, b, sizeof a) == 0, "%s: reverse single draws differ from one call", what);

    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    fill(b, N, seed, stream, off);
    omp_set_num_threads(threads);
    CHECK(memcmp(a, b, sizeof a) == 0, "%s: 1 thread differs from %d threads", what, threads);

    // another seed, stream or offset gives other numbers
    const uint64_t other[3][3] = {{seed + 1, stream, off}, {seed, stream + 1, off},
                                  {seed, stream, off + 1}};
    for (int k = 0; k < 3; k++) {
        fill(b, N, other[k][0], other[k][1], other[k][2]);
        int same = 0;
        for (size_t i = 0; i < N; i++) same += a[i] == b[i];
        CHECK(same < 5, "%s: key change %d leaves %d of %d draws equal", what, k, same, N);
    }
}

static void test_uniform_stats(void) {
    enum { N = 1000000 };
    float* x = mallocCheck(N * sizeof(float));
    rng_fill_uniform(x, N, 42, rng_stream(RNG_INIT, 3, 0), 0);
    double s = 0, s2 = 0, lo = 1, hi = 0;
    for (size_t i = 0; i < N; i++) {
        s += x[i];
        s2 += (double)x[i] * x[i];
        if (x[i] < lo) lo = x[i];
        if (x[i] > hi) hi = x[i];
    }
    double mean = s / N, var = s2 / N - mean * mean;
    CHECK(lo > 0.0 && hi < 1.0, "uniform range [%g, %g] not inside (0, 1)", lo, hi);
    // 4 sigma: sd(mean) = sqrt(1/12/N); sd(var) = sqrt((1/80 - 1/144)/N)
    CHECK_CLOSE(mean, 0.5, 4 * sqrt(1.0 / 12 / N), 0, "uniform mean");
    CHECK_CLOSE(var, 1.0 / 12, 4 * sqrt((1.0 / 80 - 1.0 / 144) / N), 0, "uniform variance");
    // a 10-bin histogram, chi-square with 9 dof (mean 9, sd 4.2)
    double h[10] = {0}, chi = 0;
    for (size_t i = 0; i < N; i++) h[(int)(x[i] * 10)]++;
    for (int k = 0; k < 10; k++) chi += (h[k] - N / 10.0) * (h[k] - N / 10.0) / (N / 10.0);
    CHECK(chi < 30, "uniform histogram chi-square %g (9 dof)", chi);
    free(x);
}

static void test_normal_stats(void) {
    enum { N = 1000000 };
    float* z = mallocCheck(N * sizeof(float));
    rng_fill_normal(z, N, 42, rng_stream(RNG_LATENT, 1, 2), 0);
    double s = 0, s2 = 0, beyond2 = 0, pair = 0;
    for (size_t i = 0; i < N; i++) {
        s += z[i];
        s2 += (double)z[i] * z[i];
        beyond2 += fabs(z[i]) > 2.0;
        if (i & 1) pair += (double)z[i - 1] * z[i];
        if (!isfinite(z[i])) CHECK(0, "normal draw %zu not finite", i);
    }
    double mean = s / N, var = s2 / N - mean * mean, frac = beyond2 / N;
    double p2 = 0.04550026389635842;  // P(|Z| > 2) = erfc(2 / sqrt(2))
    CHECK_CLOSE(mean, 0.0, 4 * sqrt(1.0 / N), 0, "normal mean");
    CHECK_CLOSE(var, 1.0, 4 * sqrt(2.0 / N), 0, "normal variance");
    CHECK_CLOSE(frac, p2, 4 * sqrt(p2 * (1 - p2) / N), 0, "normal fraction beyond 2");
    // the cosine and sine halves of a Box-Muller pair are uncorrelated
    CHECK_CLOSE(pair / (N / 2), 0.0, 4 * sqrt(1.0 / (N / 2)), 0, "normal pair correlation");
    free(z);
}

static void test_uint_below(void) {
    // first attempt = high half of word * n, the word being uniform draw i's
    // (n = 10: 2^32 mod 10 = 6, so only low halves below 6 are redrawn)
    const uint64_t seed = 9, stream = rng_stream(RNG_CLASS_DRAW, 5, 17);
    int checked = 0;
    for (uint64_t i = 0; i < 1000; i++) {
        uint32_t w = hd_rng_block(seed, stream, i >> 2).v[i & 3];
        uint64_t m = (uint64_t)w * 10;
        if ((uint32_t)m < 6) continue;
        checked += rng_uint_below(seed, stream, i, 10) == (uint32_t)(m >> 32);
    }
    CHECK(checked == 1000, "uint_below first attempt matches the uniform word (%d of 1000)",
          checked);

    enum { N = 100000 };
    double h[10] = {0}, chi = 0;
    for (uint64_t i = 0; i < N; i++) {
        uint32_t k = rng_uint_below(seed, stream, i, 10);
        if (k >= 10) { CHECK(0, "uint_below(10) gave %u", k); break; }
        h[k]++;
    }
    for (int k = 0; k < 10; k++) chi += (h[k] - N / 10.0) * (h[k] - N / 10.0) / (N / 10.0);
    CHECK(chi < 30, "uint_below(10) chi-square %g (9 dof)", chi);

    // n = 3 * 2^30: plain multiply-shift (no rejection) would give residues
    // mod 3 with probabilities 1/2, 1/4, 1/4; unbiased gives 1/3 each
    const uint32_t big = 3u << 30;
    double r[3] = {0};
    chi = 0;
    for (uint64_t i = 0; i < 3 * N; i++) {
        uint32_t k = rng_uint_below(seed, stream + 1, i, big);
        if (k >= big) { CHECK(0, "uint_below(3*2^30) gave %u", k); break; }
        r[k % 3]++;
    }
    for (int k = 0; k < 3; k++) chi += (r[k] - N) * (r[k] - N) / N;
    CHECK(chi < 20, "uint_below(3*2^30) residues mod 3: %g %g %g (chi-square %g, 2 dof)", r[0],
          r[1], r[2], chi);

    int ones = 0, top = 0;
    for (uint64_t i = 0; i < 10000; i++) {
        ones += rng_uint_below(seed, stream, i, 1) == 0;
        top += rng_uint_below(seed, stream, i, 0xffffffffu) < 0xffffffffu;
    }
    CHECK(ones == 10000, "uint_below(1) is always 0");
    CHECK(top == 10000, "uint_below(2^32-1) stays below n");
}

static void stream_a_too_big(void) { rng_stream(RNG_DROPOUT, 1ull << 24, 0); }
static void stream_b_too_big(void) { rng_stream(RNG_DROPOUT, 0, 1ull << 32); }
static void stream_no_purpose(void) { rng_stream(0, 0, 0); }
static void uint_below_zero(void) { rng_uint_below(1, 1, 0, 0); }

static void test_stream(void) {
    CHECK(rng_stream(RNG_AUGMENT, 0x123456, 0x89abcdef) ==
              (((uint64_t)RNG_AUGMENT << 56) | 0x0012345689abcdefull),
          "stream bit layout");
    CHECK(rng_stream(RNG_DROPOUT, 7, 100 + 5) == rng_stream(RNG_DROPOUT, 7, 100) + 5,
          "stream of sample b + n is the stream of b plus n");
    // distinct over purposes x edge values of a and b
    enum { P = RNG_PURPOSE_END - RNG_INIT };
    const uint64_t as[3] = {0, 1, (1ull << 24) - 1}, bs[3] = {0, 1, 0xffffffffull};
    uint64_t ids[P * 9];
    int n = 0;
    for (int p = RNG_INIT; p < RNG_PURPOSE_END; p++)
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++) ids[n++] = rng_stream(p, as[i], bs[j]);
    int dup = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++) dup += ids[i] == ids[j];
    CHECK(dup == 0, "%d colliding stream ids", dup);
    CHECK(ids[0] >= (1ull << 56), "purpose streams stay clear of raw test streams");
    CHECK(t_exits_with_error(stream_a_too_big), "rng_stream refuses a >= 2^24");
    CHECK(t_exits_with_error(stream_b_too_big), "rng_stream refuses b >= 2^32");
    CHECK(t_exits_with_error(stream_no_purpose), "rng_stream refuses purpose 0");
    CHECK(t_exits_with_error(uint_below_zero), "rng_uint_below refuses n = 0");
}

int main(void) {
    test_known_answers();
    test_unit_interval();
    check_order_independence("uniform", rng_fill_uniform);
    check_order_independence("normal", rng_fill_normal);
    test_uniform_stats();
    test_normal_stats();
    test_uint_below();
    test_stream();
    return t_report("test_rng");
}
