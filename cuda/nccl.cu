// NCCL communicator bootstrapped over MPI: MPI stays the control plane, NCCL
// moves the device buffers (Debian's Open MPI is not CUDA-aware).
#include <stdlib.h>

#include "device_model.h"

struct NcclComm {
    ncclComm_t comm;
};

extern "C" NcclComm* nccl_comm_init(MPI_Comm comm) {
    int rank = 0, size = 1;
    mpiCheck(MPI_Comm_rank(comm, &rank));
    mpiCheck(MPI_Comm_size(comm, &size));
    ncclUniqueId id;
    if (rank == 0) ncclCheck(ncclGetUniqueId(&id));
    mpiCheck(MPI_Bcast(&id, (int)sizeof id, MPI_BYTE, 0, comm));
    NcclComm* nc = (NcclComm*)mallocCheck(sizeof *nc);
    ncclCheck(ncclCommInitRank(&nc->comm, size, id, rank));
    return nc;
}

void nccl_allreduce_sum_stream(NcclComm* nc, float* buf, size_t n, cudaStream_t stream) {
    ncclCheck(ncclAllReduce(buf, buf, n, ncclFloat, ncclSum, nc->comm, stream));
}

int nccl_comm_async_error(NcclComm* nc, char* msg, size_t n) {
    ncclResult_t async = ncclSuccess;
    ncclResult_t res = ncclCommGetAsyncError(nc->comm, &async);
    if (res != ncclSuccess) async = res;
    if (async == ncclSuccess || async == ncclInProgress) return 0;
    snprintf(msg, n, "%s (%s)", ncclGetErrorString(async), ncclGetLastError(nc->comm));
    return 1;
}

void nccl_comm_abort(NcclComm* nc) { ncclCommAbort(nc->comm); }

extern "C" void nccl_allreduce_sum(NcclComm* nc, float* buf, size_t n, CudaContext* ctx) {
    nccl_allreduce_sum_stream(nc, buf, n, ctx->stream);
}

extern "C" void nccl_comm_destroy(NcclComm* nc) {
    if (!nc) return;
    // Finalize flushes outstanding collectives before the communicator goes.
    ncclCheck(ncclCommFinalize(nc->comm));
    ncclCheck(ncclCommDestroy(nc->comm));
    free(nc);
}
