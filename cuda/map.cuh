// One thread per element over a grid-stride loop, shared by the element-wise
// .cu files: Op is a small struct whose operator()(i) does element i, so each
// op is its formula and nothing else.
#ifndef ZSSEG_MAP_CUH
#define ZSSEG_MAP_CUH

#include "cuda_common.h"

template <typename Op>
__global__ void map_kernel(Op op, size_t n) {
    size_t step = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) op(i);
}

template <typename Op>
static void launch_map(CudaContext* ctx, Op op, size_t n) {
    if (n == 0) return;
    map_kernel<<<cuda_grid(n), CUDA_BLOCK, 0, ctx->stream>>>(op, n);
    cudaCheckLaunch();
}

#endif  // ZSSEG_MAP_CUH
