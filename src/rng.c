#include "rng.h"

#include "common.h"
#include "hd_math.h"

uint64_t rng_stream(int purpose, uint64_t a, uint64_t b) {
    if (purpose < RNG_INIT || purpose >= RNG_PURPOSE_END)
        ZS_FAIL("use a value of RngPurpose (rng.h)", "rng_stream: unknown purpose %d", purpose);
    if (a >= (1ull << 24) || b >= (1ull << 32))
        ZS_FAIL("a must stay below 2^24 and b below 2^32 (rng.h bit layout)",
                "rng_stream: index out of range (purpose %d, a %llu, b %llu)", purpose,
                (unsigned long long)a, (unsigned long long)b);
    return ((uint64_t)purpose << 56) | (a << 32) | b;
}

void rng_fill_uniform(float* out, size_t n, uint64_t seed, uint64_t stream, uint64_t offset) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = hd_rng_uniform(seed, stream, offset + i);
}

void rng_fill_normal(float* out, size_t n, uint64_t seed, uint64_t stream, uint64_t offset) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = hd_rng_normal(seed, stream, offset + i);
}

uint32_t rng_uint_below(uint64_t seed, uint64_t stream, uint64_t i, uint32_t n) {
    if (n == 0) ZS_FAIL("draw from a non-empty range", "rng_uint_below: n = 0");
    return hd_rng_uint_below(seed, stream, i, n);
}
