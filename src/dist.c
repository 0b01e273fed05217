#include "dist.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

// Largest single message, in floats: 2^30 bytes keeps every count far below
// INT_MAX and the transport's per-message limits.
#define DIST_MAX_CHUNK_FLOATS ((size_t)1 << 28)

void dist_init(Dist* d, int* argc, char*** argv) {
    memset(d, 0, sizeof *d);
    int init = 0;
    mpiCheck(MPI_Initialized(&init));
    if (!init) {
        int provided = 0;
        mpiCheck(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
        d->owns_mpi = 1;
        if (provided < MPI_THREAD_FUNNELED)
            log_warn(
                "MPI provides thread level %d, below MPI_THREAD_FUNNELED; only the main "
                "thread calls MPI, which works with most MPI builds",
                provided);
    }
    mpiCheck(MPI_Comm_rank(MPI_COMM_WORLD, &d->rank));
    mpiCheck(MPI_Comm_size(MPI_COMM_WORLD, &d->world));
    zs_set_rank(d->rank, d->world);
    // Our collectives run on a private communicator whose errors come back as
    // codes, so mpiCheck can name the failing call.
    mpiCheck(MPI_Comm_dup(MPI_COMM_WORLD, &d->comm));
    mpiCheck(MPI_Comm_set_errhandler(d->comm, MPI_ERRORS_RETURN));
    MPI_Comm node;
    mpiCheck(MPI_Comm_split_type(d->comm, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &node));
    mpiCheck(MPI_Comm_rank(node, &d->local_rank));
    mpiCheck(MPI_Comm_size(node, &d->local_world));
    mpiCheck(MPI_Comm_free(&node));

    // Only the fields travel, not the padding before iter.
    int lens[4] = {5, 1, 3, 1};
    MPI_Aint disp[4] = {
        (MPI_Aint)offsetof(ControlRecord, stage), (MPI_Aint)offsetof(ControlRecord, iter),
        (MPI_Aint)offsetof(ControlRecord, lr_e), (MPI_Aint)offsetof(ControlRecord, flags)};
    MPI_Datatype types[4] = {MPI_INT32_T, MPI_INT64_T, MPI_FLOAT, MPI_UINT32_T};
    MPI_Datatype t;
    mpiCheck(MPI_Type_create_struct(4, lens, disp, types, &t));
    mpiCheck(MPI_Type_create_resized(t, 0, (MPI_Aint)sizeof(ControlRecord), &d->control_type));
    mpiCheck(MPI_Type_free(&t));
    mpiCheck(MPI_Type_commit(&d->control_type));
}

void dist_finalize(Dist* d) {
    mpiCheck(MPI_Type_free(&d->control_type));
    mpiCheck(MPI_Comm_free(&d->comm));
    if (d->owns_mpi) mpiCheck(MPI_Finalize());
    d->owns_mpi = 0;
}

void dist_broadcast_params(const Dist* d, float* params, size_t n) {
    for (size_t off = 0; off < n; off += DIST_MAX_CHUNK_FLOATS) {
        size_t c = n - off < DIST_MAX_CHUNK_FLOATS ? n - off : DIST_MAX_CHUNK_FLOATS;
        mpiCheck(MPI_Bcast(params + off, (int)c, MPI_FLOAT, 0, d->comm));
    }
}

// Caller bugs that would silently double-sum or skip gradients.
static void check_ranges(const size_t* offsets, const size_t* counts, int n_ranges,
                         size_t bucket_floats) {
    const char* hint = "a bug in the caller: ranges come from the parameter table's regions";
    if (bucket_floats == 0) ZS_FAIL(hint, "allreduce bucket size must be > 0");
    for (int i = 1; i < n_ranges; i++)
        if (offsets[i] < offsets[i - 1] + counts[i - 1])
            ZS_FAIL(hint, "allreduce range %d [%zu, +%zu) starts before range %d ends at %zu", i,
                    offsets[i], counts[i], i - 1, offsets[i - 1] + counts[i - 1]);
}

void dist_allreduce_ranges(Dist* d, float* buf, const size_t* offsets, const size_t* counts,
                           int n_ranges, size_t bucket_floats, float scale) {
    check_ranges(offsets, counts, n_ranges, bucket_floats);
    size_t bucket = bucket_floats < DIST_MAX_CHUNK_FLOATS ? bucket_floats : DIST_MAX_CHUNK_FLOATS;
    double t0 = MPI_Wtime();
    for (int r = 0; r < n_ranges; r++) {
        float* x = buf + offsets[r];
        size_t n = counts[r];
        if (d->world > 1)
            for (size_t off = 0; off < n; off += bucket) {
                size_t c = n - off < bucket ? n - off : bucket;
                mpiCheck(MPI_Allreduce(MPI_IN_PLACE, x + off, (int)c, MPI_FLOAT, MPI_SUM, d->comm));
                d->allreduce_calls++;
            }
        if (scale != 1.0f) {
#pragma omp parallel for schedule(static)
            for (size_t i = 0; i < n; i++) x[i] *= scale;
        }
        d->allreduce_bytes += n * sizeof(float);
    }
    d->allreduce_s += MPI_Wtime() - t0;
}

void dist_allreduce_grads(Dist* d, float* grads, size_t n, size_t bucket_floats, float scale) {
    size_t zero = 0;
    dist_allreduce_ranges(d, grads, &zero, &n, 1, bucket_floats, scale);
}

void dist_allreduce_doubles(const Dist* d, double* v, int n) {
    mpiCheck(MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, d->comm));
}

void dist_allgather_ints(const Dist* d, int* buf, int n) {
    mpiCheck(MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, n, MPI_INT, d->comm));
}

void dist_allgather_floats(const Dist* d, float* buf, const size_t* counts) {
    int* cnt = (int*)mallocCheck(2 * (size_t)d->world * sizeof(int));
    int* displ = cnt + d->world;
    size_t total = 0;
    for (int r = 0; r < d->world; r++) {
        if (total + counts[r] > INT_MAX)
            ZS_FAIL("use a smaller per-rank batch (data.batch_size) or feature size "
                    "(model.feature_dim): the gathered MMD rows must stay under 2^31 floats",
                    "dist_allgather_floats: %zu + %zu floats exceed MPI's int offsets", total,
                    counts[r]);
        cnt[r] = (int)counts[r];
        displ[r] = (int)total;
        total += counts[r];
    }
    mpiCheck(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, cnt, displ, MPI_FLOAT,
                            d->comm));
    free(cnt);
}

uint32_t dist_agree_flags(const Dist* d, uint32_t local) {
    uint32_t all = 0;
    mpiCheck(MPI_Allreduce(&local, &all, 1, MPI_UINT32_T, MPI_BOR, d->comm));
    return all;
}

void dist_broadcast_control(const Dist* d, ControlRecord* rec) {
    mpiCheck(MPI_Bcast(rec, 1, d->control_type, 0, d->comm));
}

char* dist_broadcast_text(const Dist* d, const char* text) {
    uint64_t len = d->rank == 0 ? (uint64_t)strlen(text) : 0;
    mpiCheck(MPI_Bcast(&len, 1, MPI_UINT64_T, 0, d->comm));
    if (len >= INT_MAX)
        ZS_FAIL("the text is a config file: keep it under 2 GB",
                "text of %llu bytes too long to broadcast", (unsigned long long)len);
    char* copy = (char*)mallocCheck((size_t)len + 1);
    if (d->rank == 0) memcpy(copy, text, (size_t)len);
    mpiCheck(MPI_Bcast(copy, (int)len, MPI_CHAR, 0, d->comm));
    copy[len] = '\0';
    return copy;
}

uint64_t dist_checksum(const float* x, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a 64 offset basis
    for (size_t i = 0; i < n; i++) {
        uint32_t w;
        memcpy(&w, x + i, sizeof w);
        h = (h ^ w) * 0x100000001b3ull;  // FNV-1a 64 prime
    }
    return h;
}

void dist_check_params(const Dist* d, const float* params, size_t n, long iter) {
    uint64_t mine = dist_checksum(params, n);
    uint64_t* all = (uint64_t*)mallocCheck((size_t)d->world * sizeof(uint64_t));
    mpiCheck(MPI_Allgather(&mine, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, d->comm));
    int first = -1, n_bad = 0;
    for (int r = 1; r < d->world; r++)
        if (all[r] != all[0]) {
            if (first < 0) first = r;
            n_bad++;
        }
    uint64_t bad = first >= 0 ? all[first] : 0, ref = all[0];
    free(all);
    if (first < 0) return;
    const char* hint =
        "all ranks apply the same update to the same parameters, so they must stay bitwise "
        "equal. Likely causes: ranks on different CPU types or library versions (OpenBLAS "
        "picks its kernels per CPU: use one node type or set OPENBLAS_CORETYPE), another "
        "zsseg binary on some node, a result that depends on thread timing (non-deterministic "
        "reductions), or a hardware fault (memory errors) on that rank's node";
    if (d->rank == 0)
        ZS_FAIL(hint,
                "parameters diverged at iteration %ld: rank %d checksum %016llx differs from "
                "rank 0's %016llx (%d of %d ranks differ)",
                iter, first, (unsigned long long)bad, (unsigned long long)ref, n_bad, d->world);
    // Rank 0 prints the message and aborts the job; this barrier, which rank 0
    // never enters, keeps the other ranks from racing it with their own abort.
    MPI_Barrier(d->comm);
    ZS_FAIL(hint, "parameters diverged at iteration %ld (rank 0 reports the details)", iter);
}
