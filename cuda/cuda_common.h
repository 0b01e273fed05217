// Shared by the .cu files only (host code includes zsseg_cuda.h): library
// check macros, the CudaContext layout and launch geometry.
// Each check prints file:line, the failing call, the library's own message
// and a HINT the user can act on, then exits through zs_fail.
#ifndef ZSSEG_CUDA_COMMON_H
#define ZSSEG_CUDA_COMMON_H

#include <stddef.h>
#include <stdio.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <nccl.h>

#include "zsseg_cuda.h"

// common.h is a C header without extern "C" guards; its system headers are
// already included above, so only its own declarations get C linkage here.
extern "C" {
#include "common.h"
}

// ---------------------------------------------------------------- checks
void cuda_check(cudaError_t err, const char* call, const char* file, int line);
void cudnn_check(cudnnStatus_t st, const char* call, const char* file, int line);
void cublas_check(cublasStatus_t st, const char* call, const char* file, int line);
void nccl_check(ncclResult_t res, const char* call, const char* file, int line);
#define cudaCheck(call) cuda_check((call), #call, __FILE__, __LINE__)
#define cudnnCheck(call) cudnn_check((call), #call, __FILE__, __LINE__)
#define cublasCheck(call) cublas_check((call), #call, __FILE__, __LINE__)
#define ncclCheck(call) nccl_check((call), #call, __FILE__, __LINE__)
// After a kernel launch: launch errors (bad geometry, missing sm_XX image)
// show up here; faults inside the kernel surface at the next synchronising call.
#define cudaCheckLaunch() cuda_check(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)

// ---------------------------------------------------------------- context
struct ConvPlan;  // conv_cudnn.cu: descriptors + algorithms of one conv shape

struct CudaContext {
    cudaStream_t stream;
    cudnnHandle_t cudnn;
    cublasHandle_t cublas;
    int tf32, deterministic;
    void* workspace;  // cuDNN workspace, grown when a new conv shape needs more
    size_t workspace_bytes;
    struct ConvPlan* plans;  // cached per conv shape (conv_cudnn.cu)
    int n_plans, cap_plans;
    double* partials;  // reduction scratch (loss_cuda.cu), grown by cuda_scratch_doubles
    size_t partials_n;
};

// The context's device scratch of at least n doubles, for per-block partial
// sums. Growing it waits for the stream (queued kernels may use the old one),
// so callers ask once per op for all they need; the contents are not kept.
double* cuda_scratch_doubles(CudaContext* ctx, size_t n);

// Release the conv plan cache (conv_cudnn.cu); called by cuda_context_destroy.
void conv_plans_destroy(CudaContext* ctx);

// ---------------------------------------------------------------- launch geometry
// Grid-stride loops: a bounded grid covers any n (size_t, > 2^31 is fine).
static const unsigned CUDA_BLOCK = 256;
static const size_t CUDA_MAX_BLOCKS = 65536;
static inline unsigned cuda_grid(size_t n) {
    size_t b = (n + CUDA_BLOCK - 1) / CUDA_BLOCK;
    return (unsigned)(b == 0 ? 1 : (b < CUDA_MAX_BLOCKS ? b : CUDA_MAX_BLOCKS));
}

#endif  // ZSSEG_CUDA_COMMON_H
