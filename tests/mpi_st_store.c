// st_store_write under MPI (mpirun -np R, R = 1, 2, 3): every rank builds
// the same round (tests/st_store_fixture.h) and writes an uneven slice of it
// collectively (R = 3: rank 0 writes no row); then
//   - every rank reads the file back (st_store_read verifies shape, CRCs and
//     ids) and finds the in-memory round bit for bit;
//   - rank 0 writes the one-rank file alone (MPI_COMM_SELF) and reads it back
//     equal to the R-rank file, dataset by dataset;
//   - no PATH.tmp is left behind.
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "dist.h"
#include "st_store.h"
#include "st_store_fixture.h"
#include "mpi_testing.h"
#include "testing.h"

// s equals want: shape, labels, weights, round, iteration and mode.
static void check_equal(const char* what, const StStore* s, const StStore* want) {
    const size_t nHW = (size_t)want->n * want->H * want->W;
    CHECK(s->n == want->n && s->H == want->H && s->W == want->W, "%s: shape %d x %d x %d", what,
          s->n, s->H, s->W);
    if (s->n != want->n || s->H != want->H || s->W != want->W) return;
    CHECK(memcmp(s->labels, want->labels, nHW) == 0, "%s: labels differ", what);
    CHECK(memcmp(s->weights, want->weights, nHW * sizeof(float)) == 0, "%s: weights differ", what);
    CHECK(s->round == want->round && s->iteration == want->iteration &&
              strcmp(s->mode, want->mode) == 0,
          "%s: round %d iteration %ld mode '%s'", what, s->round, s->iteration, s->mode);
}

// Read path into s, counting a failure (and leaving s empty) on an error.
static void read_ok(const char* what, StStore* s, const char* path) {
    char* err = st_store_read(s, path, STF_N, STF_H, STF_W, stf_ids);
    CHECK(!err, "%s: %s", what, err ? err : "");
    free(err);
}

int main(int argc, char** argv) {
    Dist d;
    dist_init(&d, &argc, &argv);
    char dir[64] = "/tmp/zsseg-mpi-st-store-XXXXXX";
    if (d.rank == 0 && !mkdtemp(dir)) ZS_FAIL("check /tmp", "mkdtemp %s failed", dir);
    mpiCheck(MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, d.comm));
    char one[128], world[128], tmp[160];
    snprintf(one, sizeof one, "%s/round_one.h5", dir);
    snprintf(world, sizeof world, "%s/round_world.h5", dir);

    StStore ref;
    stf_fill(&ref, 11);
    // uneven slices: rank r writes [N r^2 / R^2, N (r+1)^2 / R^2)
    const long R2 = (long)d.world * d.world;
    const int start = (int)(STF_N * (long)d.rank * d.rank / R2);
    const int end = (int)(STF_N * (long)(d.rank + 1) * (d.rank + 1) / R2);
    st_store_write(&ref, world, stf_ids, start, end - start, &d);
    snprintf(tmp, sizeof tmp, "%s.tmp", world);
    CHECK(access(world, F_OK) == 0 && access(tmp, F_OK) != 0, "rank %d: committed, no .tmp left",
          d.rank);

    StStore got;
    read_ok("R-rank file", &got, world);
    check_equal("R-rank file", &got, &ref);

    if (d.rank == 0) {
        Dist self = d;
        self.rank = 0, self.world = 1, self.comm = MPI_COMM_SELF;
        st_store_write(&ref, one, stf_ids, 0, STF_N, &self);
        StStore alone;
        read_ok("one-rank file", &alone, one);
        check_equal("R-rank file against the one-rank file", &got, &alone);
        st_store_free(&alone);
    }
    st_store_free(&got);
    st_store_free(&ref);

    t_mpi_sum_failures(d.comm);
    if (d.rank == 0 && t_failures == 0) {
        unlink(one), unlink(world);
        if (rmdir(dir) != 0) fprintf(stderr, "cannot remove %s\n", dir);
    }
    int rank = d.rank, nranks = d.world;
    dist_finalize(&d);
    return t_mpi_report(rank, nranks, "mpi_st_store");
}
