// Distributed primitives under mpirun -np R (R = 1, 2, 3). Each rank's inputs
// are closed-form functions of (rank, index), so every rank can compute the
// expected sums itself:
// - exact sums (small dyadic values, no rounding in any order) equal the hand
//   sum bitwise for bucket sizes 1, 7, n and > n, with scale 1 and 1/R;
// - random sums agree with a double-precision hand sum and carry the same
//   bits on every rank (ring and recursive-doubling sizes);
// - the ranges variant touches only its ranges; broadcasts of parameters,
//   control record and text; flag agreement; in-place gathers of ints and of
//   uneven float blocks (one empty); matching parameters pass the divergence
//   check.
// With --diverge, rank 1 changes one parameter by one ulp before
// dist_check_params: the job must abort with the documented message (a
// separate ctest matches it).
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "dist.h"
#include "mpi_testing.h"
#include "testing.h"

// Exact per-rank value: the sum over ranks is a small dyadic number.
static float exact_val(int r, size_t i) { return (float)((r + 1) * (int)(i % 17)) + 0.25f * r; }

static float exact_sum(int world, size_t i) {
    double s = 0;
    for (int r = 0; r < world; r++) s += exact_val(r, i);
    return (float)s;
}

// Same bits on every rank: gather each rank's checksum of x.
static int same_on_all_ranks(const Dist* d, const float* x, size_t n) {
    uint64_t mine = dist_checksum(x, n), all[64];
    mpiCheck(MPI_Allgather(&mine, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD));
    for (int r = 1; r < d->world; r++)
        if (all[r] != all[0]) return 0;
    return 1;
}

static void check_exact_buckets(Dist* d) {
    const size_t n = 1001;
    const size_t buckets[4] = {1, 7, n, n + 500};
    float* x = (float*)malloc(n * sizeof(float));
    float* want = (float*)malloc(n * sizeof(float));
    for (int s = 0; s < 2; s++) {
        float scale = s == 0 ? 1.0f : 1.0f / (float)d->world;
        for (size_t i = 0; i < n; i++) want[i] = exact_sum(d->world, i) * scale;
        for (int b = 0; b < 4; b++) {
            for (size_t i = 0; i < n; i++) x[i] = exact_val(d->rank, i);
            uint64_t calls0 = d->allreduce_calls, bytes0 = d->allreduce_bytes;
            double t0 = d->allreduce_s;
            dist_allreduce_grads(d, x, n, buckets[b], scale);
            size_t want_calls = d->world > 1 ? (n + buckets[b] - 1) / buckets[b] : 0;
            int bad = 0;
            for (size_t i = 0; i < n; i++) bad += memcmp(&x[i], &want[i], sizeof(float)) != 0;
            CHECK(bad == 0, "rank %d bucket %zu scale %g: %d of %zu sums differ from the hand sum",
                  d->rank, buckets[b], scale, bad, n);
            CHECK(d->allreduce_calls - calls0 == want_calls && d->allreduce_bytes - bytes0 == 4 * n,
                  "bucket %zu: %llu calls (want %zu), %llu bytes", buckets[b],
                  (unsigned long long)(d->allreduce_calls - calls0), want_calls,
                  (unsigned long long)(d->allreduce_bytes - bytes0));
            CHECK(d->allreduce_s >= t0, "allreduce time went backwards");
        }
    }
    free(x);
    free(want);
}

// Random values: summation order may differ from the hand sum, but every rank
// must hold the same bits. 300001 floats cross Open MPI's switch to its
// large-message algorithm.
static void check_random(Dist* d) {
    const size_t n = 300001;
    const size_t buckets[3] = {4096, 65536, n};
    float* x = (float*)malloc(n * sizeof(float));
    float* other = (float*)malloc(n * sizeof(float));
    double* want = (double*)calloc(n, sizeof(double));
    for (int r = 0; r < d->world; r++) {
        t_fill_uniform(other, n, 1000 + r, -1.0f, 1.0f);
        for (size_t i = 0; i < n; i++) want[i] += other[i];
    }
    for (int b = 0; b < 3; b++) {
        t_fill_uniform(x, n, 1000 + d->rank, -1.0f, 1.0f);
        dist_allreduce_grads(d, x, n, buckets[b], 0.5f);
        int bad = 0;
        for (size_t i = 0; i < n; i++) bad += !t_close(x[i], 0.5 * want[i], 1e-6, 1e-6);
        CHECK(bad == 0, "rank %d bucket %zu: %d of %zu random sums off the double sum", d->rank,
              buckets[b], bad, n);
        CHECK(same_on_all_ranks(d, x, n), "bucket %zu: ranks hold different sums", buckets[b]);
    }
    free(x);
    free(other);
    free(want);
}

static void check_ranges(Dist* d) {
    const size_t n = 1001;
    const size_t off[5] = {0, 100, 600, 650, 700}, cnt[5] = {10, 333, 1, 0, 301};
    float* x = (float*)malloc(n * sizeof(float));
    uint8_t* in = (uint8_t*)calloc(n, 1);
    for (int k = 0; k < 5; k++) memset(in + off[k], 1, cnt[k]);
    // outside the ranges each rank holds its own values, which must survive
    for (size_t i = 0; i < n; i++)
        x[i] = in[i] ? exact_val(d->rank, i) : -1000.0f * (d->rank + 1) - i;
    dist_allreduce_ranges(d, x, off, cnt, 5, 7, 0.5f);
    int bad_in = 0, bad_out = 0;
    for (size_t i = 0; i < n; i++) {
        if (in[i])
            bad_in += x[i] != exact_sum(d->world, i) * 0.5f;
        else
            bad_out += x[i] != -1000.0f * (d->rank + 1) - i;
    }
    CHECK(bad_in == 0, "rank %d: %d summed range values wrong", d->rank, bad_in);
    CHECK(bad_out == 0, "rank %d: %d values outside the ranges changed", d->rank, bad_out);
    free(x);
    free(in);
}

static void check_small_collectives(const Dist* d) {
    int R = d->world;
    double v[3] = {d->rank + 1.0, 1e15 + d->rank, 0.5 * d->rank};
    dist_allreduce_doubles(d, v, 3);
    CHECK(v[0] == R * (R + 1) / 2.0 && v[1] == R * 1e15 + R * (R - 1) / 2.0 &&
              v[2] == 0.25 * R * (R - 1),
          "rank %d: double sums %.17g %.17g %.17g", d->rank, v[0], v[1], v[2]);

    uint32_t f = dist_agree_flags(d, (1u << d->rank) | (d->rank == R - 1 ? 0x80000000u : 0));
    CHECK(f == (((1u << R) - 1) | 0x80000000u), "rank %d: agreed flags %08x", d->rank, f);
    CHECK(dist_agree_flags(d, 0) == 0, "rank %d: flags from nothing", d->rank);

    ControlRecord want = {3, -2, 1, 0, 1, 5000000000LL, 2.5e-4f, 1e-4f, -0.0f, 0xdeadbeefu};
    ControlRecord rec;
    if (d->rank == 0)
        rec = want;
    else
        memset(&rec, 0xab, sizeof rec);
    dist_broadcast_control(d, &rec);
    CHECK(rec.stage == want.stage && rec.kind == want.kind && rec.stop == want.stop &&
              rec.checkpoint == want.checkpoint && rec.evaluate == want.evaluate &&
              rec.iter == want.iter && rec.flags == want.flags,
          "rank %d: control record ints (%d %d %d %d %d %lld %08x)", d->rank, rec.stage, rec.kind,
          rec.stop, rec.checkpoint, rec.evaluate, (long long)rec.iter, rec.flags);
    CHECK(memcmp(&rec.lr_e, &want.lr_e, 3 * sizeof(float)) == 0,
          "rank %d: control record lrs %g %g %g", d->rank, rec.lr_e, rec.lr_d, rec.lr_g);

    const char* text = "stages = ( \"step1\", \"mixed\" );\nlr = 2.5e-4;\n";
    char* got = dist_broadcast_text(d, d->rank == 0 ? text : NULL);
    CHECK(strcmp(got, text) == 0, "rank %d: broadcast text '%s'", d->rank, got);
    free(got);
    got = dist_broadcast_text(d, d->rank == 0 ? "" : NULL);
    CHECK(got[0] == '\0', "rank %d: empty text", d->rank);
    free(got);
}

// Gathers in place: rank r fills its own block (ints: n each; floats: r + 2
// per rank times 1000, rank 1's block empty) and every rank ends with all.
static void check_gathers(const Dist* d) {
    int R = d->world, n = 5;
    int* iv = (int*)malloc((size_t)R * n * sizeof(int));
    for (int i = 0; i < R * n; i++) iv[i] = -1;
    for (int i = 0; i < n; i++) iv[d->rank * n + i] = 100 * d->rank + i;
    dist_allgather_ints(d, iv, n);
    int bad = 0;
    for (int r = 0; r < R; r++)
        for (int i = 0; i < n; i++) bad += iv[r * n + i] != 100 * r + i;
    CHECK(bad == 0, "rank %d: %d gathered ints wrong", d->rank, bad);
    free(iv);

    size_t counts[64], total = 0, mine = 0;
    for (int r = 0; r < R; r++) {
        counts[r] = r == 1 ? 0 : (size_t)(r + 2) * 1000;
        if (r < d->rank) mine += counts[r];
        total += counts[r];
    }
    float* x = (float*)malloc(total * sizeof(float));
    for (size_t i = 0; i < total; i++) x[i] = -1.0f;
    for (size_t i = 0; i < counts[d->rank]; i++) x[mine + i] = exact_val(d->rank, i);
    dist_allgather_floats(d, x, counts);
    bad = 0;
    for (int r = 0, off = 0; r < R; off += (int)counts[r], r++)
        for (size_t i = 0; i < counts[r]; i++) bad += x[off + i] != exact_val(r, i);
    CHECK(bad == 0, "rank %d: %d of %zu gathered floats wrong", d->rank, bad, total);
    free(x);
}

// Parameters differ per rank until rank 0's are broadcast; then they pass the
// check (or, with diverge, rank 1 moves one value by one ulp and must fail).
static void check_params(const Dist* d, int diverge) {
    const size_t n = 12345;
    float* p = (float*)malloc(n * sizeof(float));
    float* want = (float*)malloc(n * sizeof(float));
    t_fill_normal(p, n, 50 + d->rank, 1.0f);
    t_fill_normal(want, n, 50, 1.0f);
    dist_broadcast_params(d, p, n);
    CHECK(memcmp(p, want, n * sizeof(float)) == 0, "rank %d: parameters differ from rank 0's",
          d->rank);
    if (diverge && d->rank == 1) p[4321] = nextafterf(p[4321], INFINITY);
    dist_check_params(d, p, n, 17);
    CHECK(!diverge || d->world == 1, "diverged parameters passed the check");
    free(p);
    free(want);
}

int main(int argc, char** argv) {
    Dist d;
    dist_init(&d, &argc, &argv);
    int diverge = argc > 1 && strcmp(argv[1], "--diverge") == 0;
    int world = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    CHECK(d.world == world && zs_rank == d.rank && zs_world == world && d.owns_mpi,
          "rank %d: world %d (MPI says %d)", d.rank, d.world, world);
    // mpirun puts every rank on this one machine
    CHECK(d.local_world == world && d.local_rank == d.rank, "rank %d: local rank %d of %d", d.rank,
          d.local_rank, d.local_world);
    if (!diverge) {
        check_exact_buckets(&d);
        check_random(&d);
        check_ranges(&d);
        check_small_collectives(&d);
        check_gathers(&d);
    }
    check_params(&d, diverge);

    t_mpi_sum_failures(MPI_COMM_WORLD);
    int rank = d.rank;
    dist_finalize(&d);
    return t_mpi_report(rank, world, diverge ? "mpi_dist --diverge" : "mpi_dist");
}
