// The end of every multi-rank test: each rank's failures summed over comm
// (before MPI is finalised), then rank 0 reports "NAME (N ranks)" and the
// others only exit 0 or 1.
#ifndef ZSSEG_MPI_TESTING_H
#define ZSSEG_MPI_TESTING_H

#include <mpi.h>
#include <stdio.h>

#include "common.h"
#include "testing.h"

static inline void t_mpi_sum_failures(MPI_Comm comm) {
    int failures = t_failures;
    mpiCheck(MPI_Allreduce(&failures, &t_failures, 1, MPI_INT, MPI_SUM, comm));
}

static inline int t_mpi_report(int rank, int world, const char* name) {
    if (rank != 0) return t_failures ? 1 : 0;
    char full[128];
    snprintf(full, sizeof full, "%s (%d ranks)", name, world);
    return t_report(full);
}

#endif  // ZSSEG_MPI_TESTING_H
