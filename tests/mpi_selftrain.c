// zs3 thresholds across ranks (mpirun -np R): ~10000 seeded candidates of 3
// unseen classes (many ties, values sharing their top 16 bits, a few zeros
// and ones) plus unlabelled and seen-labelled pixels, cut unevenly across the
// ranks (with 3 ranks, rank 1 holds none). On every rank the thresholds must
// equal, bit for bit, the one-process thresholds of the whole list and a
// brute-force sort; a fourth unseen class without candidates gets +inf; the
// pixels st_zs3_apply keeps on all ranks together are those >= the threshold,
// at least k of them, and fewer than k strictly above it.
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "dist.h"
#include "selftrain.h"
#include "mpi_testing.h"
#include "testing.h"

#define NK 6
#define N 10007
static const uint8_t UNSEEN[NK] = {0, 1, 0, 1, 1, 1};  // class 5: no candidates

static void make_candidates(uint8_t* label, float* conf) {
    for (int i = 0; i < N; i++) {
        float u = hd_rng_uniform(11, 0, i);
        label[i] = u < 0.1f ? 255 : u < 0.15f ? 0 : u < 0.18f ? 4 : u < 0.6f ? 1 : 3;
        uint32_t r = hd_rng_block(11, 1, i).v[0], bits;
        float kind = hd_rng_uniform(11, 2, i);
        if (kind < 0.7f)  // 4 high halves x 32 low halves: ties and shared top bits
            bits = ((0x3F00u + (r & 3u)) << 16) | ((r >> 2) & 31u);
        else if (kind < 0.98f)  // spread over (0, 1)
            memcpy(&bits, &(float){hd_rng_uniform(11, 3, i)}, sizeof bits);
        else
            bits = (r & 1u) ? 0x3F800000u : 0u;  // 1.0 and 0.0
        memcpy(&conf[i], &bits, sizeof bits);
    }
}

static int cmp_desc(const void* a, const void* b) {
    float x = *(const float*)a, y = *(const float*)b;
    return (x < y) - (x > y);
}

int main(int argc, char** argv) {
    Dist d;
    dist_init(&d, &argc, &argv);
    static uint8_t label[N], lab[N];
    static float conf[N], weight[N], sorted[N];
    make_candidates(label, conf);

    // uneven cuts; with 3 ranks rank 1 gets nothing
    size_t lo = 0, hi = N;
    if (d.world == 2) {
        lo = d.rank == 0 ? 0 : 1234;
        hi = d.rank == 0 ? 1234 : N;
    } else if (d.world == 3) {
        const size_t cut[4] = {0, 6000, 6000, N};
        lo = cut[d.rank];
        hi = cut[d.rank + 1];
    } else if (d.world > 3) {
        lo = (size_t)N * d.rank / d.world;
        hi = (size_t)N * (d.rank + 1) / d.world;
    }

    // percents in hundredths, so the reference k = ceil(P * n / 10000) is integer math
    const int P[8] = {1, 100, 2500, 2800, 5000, 7500, 9999, 10000};
    for (int j = 0; j < 8; j++) {
        StRule r = {.mode = ST_MODE_ZS3, .percent = P[j] / 100.0, .K = NK, .unseen = UNSEEN};
        float thr[NK], one[NK];
        st_zs3_thresholds(&r, &d, label + lo, conf + lo, hi - lo, thr);
        st_zs3_thresholds(&r, NULL, label, conf, N, one);
        CHECK(memcmp(thr, one, sizeof thr) == 0,
              "rank %d, %g%%: thresholds differ from one process", d.rank, r.percent);
        for (int c = 0; c < NK; c++) {
            size_t n = 0;
            for (int i = 0; i < N; i++)
                if (label[i] == c) sorted[n++] = conf[i];
            if (!UNSEEN[c] || n == 0) {
                CHECK(isinf(thr[c]) && thr[c] > 0, "rank %d class %d: threshold %g, not +inf",
                      d.rank, c, thr[c]);
                continue;
            }
            qsort(sorted, n, sizeof(float), cmp_desc);
            size_t k = ((size_t)P[j] * n + 9999) / 10000;
            CHECK(memcmp(&thr[c], &sorted[k - 1], sizeof(float)) == 0,
                  "rank %d, %g%% class %d (n %zu, k %zu): got %.9g want %.9g", d.rank, r.percent,
                  c, n, k, thr[c], sorted[k - 1]);
            // kept on all ranks = pixels >= thr: at least k, fewer than k strictly above
            memcpy(lab + lo, label + lo, hi - lo);
            st_zs3_apply(thr, lab + lo, conf + lo, weight + lo, hi - lo);
            double kept = 0, above = 0;
            for (size_t i = lo; i < hi; i++) {
                kept += lab[i] == c && weight[i] == 1.0f;
                above += label[i] == c && conf[i] > thr[c];
            }
            double sums[2] = {kept, above};
            dist_allreduce_doubles(&d, sums, 2);
            size_t ge = 0;
            for (size_t i = 0; i < n; i++) ge += sorted[i] >= thr[c];
            CHECK(sums[0] == (double)ge && ge >= k && sums[1] < (double)k,
                  "rank %d, %g%% class %d: kept %g, >= thr %zu, above %g, k %zu", d.rank,
                  r.percent, c, sums[0], ge, sums[1], k);
        }
    }

    t_mpi_sum_failures(MPI_COMM_WORLD);
    int rank = d.rank, world = d.world;
    dist_finalize(&d);
    return t_mpi_report(rank, world, "mpi_selftrain");
}
