// Loader sharding under MPI (run with mpirun -np R, R = 1, 2, 3): for a
// global batch of 6, every rank's slices are gathered on rank 0 and compared
// with the whole global batch loaded by rank 0 alone (R = 1, no workers):
// the union is the global batch, no position twice, and the samples and
// their augmented bytes are identical. The dataset has a bad training sample
// (replacement must agree across ranks) and unseen images dropped by
// data.strict_inductive (the label scan is split across ranks). The test
// loader's contiguous shards, concatenated in rank order, must be the whole
// test list in order, byte-identical to one rank's.
#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "dataset.h"
#include "dataset_fixture.h"
#include "loader.h"
#include "mpi_testing.h"
#include "testing.h"

#define N_TRAIN 14
#define N_TEST 7
#define B 6
#define BATCHES 5

// position, dataset index, FNV-1a of the slot's image and label bytes
typedef struct {
    uint64_t position, index, sum;
} SlotRec;

static uint64_t fnv1a(uint64_t h, const void* p, size_t n) {
    const uint8_t* b = (const uint8_t*)p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static SlotRec slot_rec(const LoaderBatch* b, int j) {
    size_t plane = (size_t)b->H * b->W;
    uint64_t h = 0xcbf29ce484222325ull;
    h = fnv1a(h, b->images + j * 3 * plane, 3 * plane * sizeof(float));
    h = fnv1a(h, b->labels + j * plane, plane);
    SlotRec r = {(uint64_t)b->position[j], (uint64_t)b->index[j], h};
    return r;
}

static void check_train(Config* cfg, const Dataset* tr, int rank, int world) {
    Loader* L = loader_open_train(tr, cfg, rank, world, NULL);
    Loader* ref = NULL;
    if (rank == 0) {  // the reference decodes without worker threads
        fx_set(cfg, "data.workers=0");
        ref = loader_open_train(tr, cfg, 0, 1, NULL);
        fx_set(cfg, "data.workers=2");
    }
    int bl = B / world;
    SlotRec mine[B], all[B];
    for (int k = 0; k < BATCHES; k++) {
        const LoaderBatch* b = loader_next(L);
        CHECK(b->n == bl && b->sample0 == rank * bl, "rank %d: n %d sample0 %d", rank, b->n,
              b->sample0);
        for (int j = 0; j < bl; j++) mine[j] = slot_rec(b, j);
        mpiCheck(MPI_Gather(mine, 3 * bl, MPI_UINT64_T, all, 3 * bl, MPI_UINT64_T, 0,
                            MPI_COMM_WORLD));
        if (rank != 0) continue;
        const LoaderBatch* g = loader_next(ref);
        int hit[B] = {0};
        for (int s = 0; s < B; s++) {
            long off = (long)all[s].position - g->cursor;
            if (off >= 0 && off < B) hit[off]++;
            SlotRec want = slot_rec(g, s);
            CHECK(all[s].position == want.position && all[s].index == want.index &&
                      all[s].sum == want.sum,
                  "R=%d batch %d slot %d: (pos %lu, sample %lu, sum %016lx) vs R=1 (%lu, %lu, "
                  "%016lx)",
                  world, k, s, (unsigned long)all[s].position, (unsigned long)all[s].index,
                  (unsigned long)all[s].sum, (unsigned long)want.position,
                  (unsigned long)want.index, (unsigned long)want.sum);
        }
        for (int s = 0; s < B; s++)
            CHECK(hit[s] == 1, "R=%d batch %d: position %ld held %d times", world, k,
                  g->cursor + s, hit[s]);
    }
    loader_close(L);
    loader_close(ref);
}

static void check_test(const Config* cfg, const Dataset* te, int rank, int world) {
    Loader* L = loader_open_test(te, cfg, rank, world, 2, NULL);
    SlotRec* mine = (SlotRec*)malloc(N_TEST * sizeof(SlotRec));
    int n = 0;
    const LoaderBatch* b;
    while ((b = loader_next(L)) != NULL)
        for (int j = 0; j < b->n; j++) mine[n++] = slot_rec(b, j);
    loader_close(L);
    int counts[64], displs[64];
    int n3 = 3 * n;
    mpiCheck(MPI_Gather(&n3, 1, MPI_INT, counts, 1, MPI_INT, 0, MPI_COMM_WORLD));
    for (int r = 0, d = 0; rank == 0 && r < world; r++) displs[r] = d, d += counts[r];
    SlotRec* all = (SlotRec*)malloc(N_TEST * sizeof(SlotRec));
    mpiCheck(MPI_Gatherv(mine, n3, MPI_UINT64_T, all, counts, displs, MPI_UINT64_T, 0,
                         MPI_COMM_WORLD));
    if (rank == 0) {
        int total = 0;
        for (int r = 0; r < world; r++) total += counts[r] / 3;
        CHECK(total == N_TEST, "R=%d: test shards hold %d samples, want %d", world, total, N_TEST);
        Loader* one = loader_open_test(te, cfg, 0, 1, 3, NULL);
        int s = 0;
        while ((b = loader_next(one)) != NULL)
            for (int j = 0; j < b->n; j++, s++) {
                SlotRec want = slot_rec(b, j);
                CHECK(s < total && all[s].position == (uint64_t)s && all[s].sum == want.sum,
                      "R=%d: test slot %d differs from the single-rank test pass", world, s);
            }
        loader_close(one);
    }
    free(mine);
    free(all);
}

int main(int argc, char** argv) {
    MPI_Init(&argc, &argv);
    int rank, world;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    zs_set_rank(rank, world);
    char dir[64] = "/tmp/zsseg-mpi-loader-XXXXXX";
    uint8_t has_unseen[N_TRAIN] = {0};
    has_unseen[3] = has_unseen[8] = 1;
    if (rank == 0) {
        fx_make(dir, N_TRAIN, has_unseen, N_TEST);
        char id[64];
        fx_id(id, sizeof id, "train", 5);
        fx_break(dir, "train", id, 5, FX_TRUNCATED_JPEG);
        fx_id(id, sizeof id, "val", 2);
        fx_break(dir, "val", id, 102, FX_MISSING_IMAGE);
    }
    mpiCheck(MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD));

    Config* cfg = fx_config(dir, 1);
    fx_set(cfg, "data.batch_size=6");
    fx_set(cfg, "data.workers=2");
    fx_set(cfg, "data.max_bad_fraction=0.25");
    fx_set(cfg, "data.strict_inductive=true");
    DatasetClasses cs;
    dataset_classes_load(&cs, cfg);
    Dataset tr, te;
    dataset_open(&tr, cfg, &cs, DATASET_TRAIN);
    dataset_open(&te, cfg, &cs, DATASET_TEST);
    CHECK(tr.n == N_TRAIN - 2 && tr.n_dropped == 2, "rank %d: strict filter kept %d, dropped %d",
          rank, tr.n, tr.n_dropped);
    check_train(cfg, &tr, rank, world);
    check_test(cfg, &te, rank, world);

    dataset_free(&tr);
    dataset_free(&te);
    dataset_classes_free(&cs);
    config_free(cfg);
    t_mpi_sum_failures(MPI_COMM_WORLD);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) fx_remove(dir);
    MPI_Finalize();
    return t_mpi_report(rank, world, "mpi_loader_shard");
}
