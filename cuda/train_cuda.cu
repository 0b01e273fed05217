// The CUDA DeviceBackend (src/device_backend.h): device choice with the
// one-GPU-per-rank rule, and the table the trainer calls.
#include <string.h>

#include "device_model.h"

static int backend_device_count(void) { return cuda_device_count(); }

static void backend_select(const Dist* d, int allow_sharing, char* desc, size_t n) {
    MPI_Comm node;
    int me = 0, local = 1;
    mpiCheck(MPI_Comm_split_type(d->comm, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &node));
    mpiCheck(MPI_Comm_rank(node, &me));
    mpiCheck(MPI_Comm_size(node, &local));
    unsigned char mine[16];
    int dev = cuda_device_select(me, mine, desc, n);
    unsigned char* all = (unsigned char*)mallocCheck((size_t)local * 16);
    mpiCheck(MPI_Allgather(mine, 16, MPI_BYTE, all, 16, MPI_BYTE, node));
    mpiCheck(MPI_Comm_free(&node));
    int other = device_find_shared(all, local, me);
    free(all);
    if (other >= 0 && !allow_sharing)
        ZS_FAIL("start at most one rank per GPU on each node (mpirun -np <GPUs per node> per "
                "node, or srun --gpus-per-task=1), or set run.allow_gpu_sharing = true to "
                "share GPUs (kernels only: NCCL refuses two ranks on one GPU, so one rank "
                "per node then)",
                "local ranks %d and %d of this node would both use GPU %d (%d rank(s) on the "
                "node, %d GPU(s) visible)",
                other, me, dev, local, cuda_device_count());
}

static void backend_memory(size_t* free_bytes, size_t* total_bytes) {
    cuda_memory_info(free_bytes, total_bytes);
}

static void backend_reduce_and_apply(DeviceModel* g, CagNet* m, const UpdatePlan* plan) {
    cagnet_apply_cuda(g, m, plan);
}

static const DeviceBackend CUDA_BACKEND = {
    "cuda",
    backend_device_count,
    backend_select,
    {cuda_pinned_alloc, cuda_pinned_free},
    backend_memory,
    device_model_create,
    cagnet_step1_cuda,
    cagnet_step2_cuda,
    backend_reduce_and_apply,
    device_infer,
    device_model_download,
    device_model_destroy,
};

extern "C" void cuda_backend_register(void) { device_backend_register(&CUDA_BACKEND); }
