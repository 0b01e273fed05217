// Confusion matrix across ranks (mpirun -np R): every rank counts its share
// of one global label map, confusion_allreduce sums them, and every rank must
// hold exactly the brute-force count of the whole map and the same scores.
#include <mpi.h>
#include <string.h>

#include "common.h"
#include "metrics.h"
#include "mpi_testing.h"
#include "testing.h"

#define K 6
#define N 100003

int main(int argc, char** argv) {
    MPI_Init(&argc, &argv);
    int rank, world;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    zs_set_rank(rank, world);

    // the same global map on every rank; class 5 is never used (absent)
    static uint8_t gt[N], pred[N];
    uint64_t want[K * K] = {0};
    for (int i = 0; i < N; i++) {
        gt[i] =
            hd_rng_uniform(3, 0, i) < 0.05f ? 255 : (uint8_t)(hd_rng_uniform(3, 1, i) * (K - 1));
        pred[i] =
            hd_rng_uniform(3, 2, i) < 0.6f ? gt[i] : (uint8_t)(hd_rng_uniform(3, 3, i) * (K - 1));
        if (gt[i] != 255) want[gt[i] * K + pred[i]]++;
    }
    size_t lo = (size_t)N * rank / world, hi = (size_t)N * (rank + 1) / world;
    ConfMat cm;
    confusion_init(&cm, K);
    confusion_add(&cm, gt + lo, pred + lo, hi - lo);
    confusion_allreduce(&cm, MPI_COMM_WORLD);
    CHECK(memcmp(cm.m, want, sizeof want) == 0,
          "rank %d: summed matrix differs from the full count", rank);

    const uint8_t unseen[K] = {0, 0, 0, 1, 1, 1};
    Metrics m;
    metrics_compute(&cm, unseen, &m);
    double mine[3] = {m.miou, m.unseen_miou, m.hiou}, r0[3];
    memcpy(r0, mine, sizeof r0);
    mpiCheck(MPI_Bcast(r0, 3, MPI_DOUBLE, 0, MPI_COMM_WORLD));
    CHECK(memcmp(mine, r0, sizeof r0) == 0, "rank %d: scores differ from rank 0's", rank);
    CHECK(m.n_present == K - 1 && isnan(m.iou[K - 1]) && m.hiou > 0, "rank %d: presence", rank);
    confusion_free(&cm);

    t_mpi_sum_failures(MPI_COMM_WORLD);
    MPI_Finalize();
    return t_mpi_report(rank, world, "mpi_metrics");
}
