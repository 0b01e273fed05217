// Single-process parts of the distributed primitives (the multi-rank sums,
// broadcasts and divergence abort are in mpi_dist.c):
// - dist_checksum equals published FNV-1a 64 vectors (a float whose bits are
//   one byte is one FNV step on that byte) and changes for every single-bit
//   flip, a swap of two elements, and -0.0 vs 0.0;
// - caller errors in the range list stop with an error before any MPI call;
// - a singleton MPI start (no mpirun, as `zsseg train` run directly): world
//   1, sums are identities times the scale, no collectives issued, ranges
//   untouched outside, control record and text unchanged, check passes.
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "dist.h"
#include "testing.h"

static float from_bits(uint32_t b) {
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

static void check_checksum(void) {
    CHECK(dist_checksum(NULL, 0) == 0xcbf29ce484222325ull, "empty: the FNV-1a offset basis");
    float a = from_bits('a');
    CHECK(dist_checksum(&a, 1) == 0xaf63dc4c8601ec8cull, "FNV-1a 64 of \"a\"");
    const char* s = "foobar";
    float w[6];
    for (int i = 0; i < 6; i++) w[i] = from_bits((uint8_t)s[i]);
    CHECK(dist_checksum(w, 6) == 0x85944171f73967e8ull, "FNV-1a 64 of \"foobar\"");

    enum { N = 1000 };
    float x[N];
    t_fill_normal(x, N, 3, 1.0f);
    uint64_t h = dist_checksum(x, N);
    CHECK(dist_checksum(x, N) == h, "deterministic");
    int same = 0;
    const int pos[4] = {0, 1, 500, N - 1};
    for (int p = 0; p < 4; p++)
        for (int bit = 0; bit < 32; bit++) {
            uint32_t b;
            memcpy(&b, &x[pos[p]], sizeof b);
            float keep = x[pos[p]];
            x[pos[p]] = from_bits(b ^ (1u << bit));
            same += dist_checksum(x, N) == h;
            x[pos[p]] = keep;
        }
    CHECK(same == 0, "%d of 128 single-bit flips left the checksum unchanged", same);
    float t = x[10];
    x[10] = x[11];
    x[11] = t;
    CHECK(dist_checksum(x, N) != h, "swapping two elements changes the checksum");
    float z[2] = {0.0f, -0.0f};
    CHECK(dist_checksum(z, 1) != dist_checksum(z + 1, 1), "0.0 and -0.0 differ");
}

static void overlapping_ranges(void) {
    Dist d = {0};
    float buf[20] = {0};
    size_t off[2] = {0, 5}, cnt[2] = {6, 5};
    dist_allreduce_ranges(&d, buf, off, cnt, 2, 4, 1.0f);
}

static void zero_bucket(void) {
    Dist d = {0};
    float buf[4] = {0};
    dist_allreduce_grads(&d, buf, 4, 0, 1.0f);
}

static void check_singleton(int* argc, char*** argv) {
    Dist d;
    dist_init(&d, argc, argv);
    CHECK(d.rank == 0 && d.world == 1 && d.local_rank == 0 && d.local_world == 1 && d.owns_mpi,
          "singleton: rank %d world %d local %d/%d", d.rank, d.world, d.local_rank, d.local_world);
    CHECK(zs_rank == 0 && zs_world == 1, "logger rank %d/%d", zs_rank, zs_world);

    enum { N = 300 };
    float x[N], ref[N];
    t_fill_uniform(ref, N, 4, -2.0f, 2.0f);
    memcpy(x, ref, sizeof x);
    dist_allreduce_grads(&d, x, N, 7, 1.0f);
    CHECK(memcmp(x, ref, sizeof x) == 0, "scale 1 with one rank leaves the bits");
    dist_allreduce_grads(&d, x, N, 7, 0.5f);
    int bad = 0;
    for (int i = 0; i < N; i++) bad += x[i] != ref[i] * 0.5f;  // exact: a power of two
    CHECK(bad == 0, "scale 0.5: %d wrong", bad);

    memcpy(x, ref, sizeof x);
    size_t off[2] = {10, 200}, cnt[2] = {50, 100};
    dist_allreduce_ranges(&d, x, off, cnt, 2, 16, 4.0f);
    bad = 0;
    for (int i = 0; i < N; i++) {
        int in = (i >= 10 && i < 60) || i >= 200;
        bad += x[i] != (in ? ref[i] * 4.0f : ref[i]);
    }
    CHECK(bad == 0, "ranges: %d values wrong", bad);
    CHECK(d.allreduce_calls == 0 && d.allreduce_bytes == 4 * (2 * N + 150),
          "one rank issues no collectives: %llu calls, %llu bytes",
          (unsigned long long)d.allreduce_calls, (unsigned long long)d.allreduce_bytes);

    double v[2] = {1.5, -3.0};
    dist_allreduce_doubles(&d, v, 2);
    CHECK(v[0] == 1.5 && v[1] == -3.0, "double sums with one rank: %g %g", v[0], v[1]);
    CHECK(dist_agree_flags(&d, 0x5u) == 0x5u, "flags with one rank");
    ControlRecord rec = {1, 2, 0, 1, 0, 77, 0.1f, 0.2f, 0.3f, 9u};
    dist_broadcast_control(&d, &rec);
    CHECK(rec.stage == 1 && rec.kind == 2 && rec.checkpoint == 1 && rec.iter == 77 &&
              rec.lr_g == 0.3f && rec.flags == 9u,
          "control record with one rank");
    char* txt = dist_broadcast_text(&d, "a = 1;");
    CHECK(strcmp(txt, "a = 1;") == 0, "text copy '%s'", txt);
    free(txt);
    dist_broadcast_params(&d, x, N);
    dist_check_params(&d, x, N, 3);  // nothing to compare: returns
    dist_finalize(&d);
}

int main(int argc, char** argv) {
    check_checksum();
    // before MPI starts: the failures must not depend on it
    CHECK(t_exits_with_error(overlapping_ranges), "overlapping ranges are refused");
    CHECK(t_exits_with_error(zero_bucket), "a zero bucket size is refused");
    check_singleton(&argc, &argv);
    return t_report("test_dist");
}
