// CudaContext: one stream with the cuDNN and cuBLAS handles bound to it, so
// every op of a context runs in issue order without extra synchronisation.
#include <stdlib.h>

#include "cuda_common.h"

extern "C" CudaContext* cuda_context_create(int tf32, int deterministic) {
    CudaContext* ctx = (CudaContext*)callocCheck(1, sizeof *ctx);
    ctx->tf32 = tf32;
    ctx->deterministic = deterministic;
    // A blocking stream (not cudaStreamNonBlocking): it stays ordered with the
    // legacy default stream, which the blocking copies in device.cu rely on.
    cudaCheck(cudaStreamCreate(&ctx->stream));
    cudnnCheck(cudnnCreate(&ctx->cudnn));
    cudnnCheck(cudnnSetStream(ctx->cudnn, ctx->stream));
    cublasCheck(cublasCreate(&ctx->cublas));
    cublasCheck(cublasSetStream(ctx->cublas, ctx->stream));
    log_info("CUDA context: TF32 %s, deterministic algorithms %s", tf32 ? "on" : "off",
             deterministic ? "on" : "off");
    return ctx;
}

extern "C" void cuda_context_destroy(CudaContext* ctx) {
    if (!ctx) return;
    cudaCheck(cudaStreamSynchronize(ctx->stream));
    conv_plans_destroy(ctx);
    cudaCheck(cudaFree(ctx->workspace));
    cudaCheck(cudaFree(ctx->partials));
    cublasCheck(cublasDestroy(ctx->cublas));
    cudnnCheck(cudnnDestroy(ctx->cudnn));
    cudaCheck(cudaStreamDestroy(ctx->stream));
    free(ctx);
}

double* cuda_scratch_doubles(CudaContext* ctx, size_t n) {
    if (n > ctx->partials_n) {
        cudaCheck(cudaStreamSynchronize(ctx->stream));
        cudaCheck(cudaFree(ctx->partials));
        cudaCheck(cudaMalloc((void**)&ctx->partials, n * sizeof(double)));
        ctx->partials_n = n;
    }
    return ctx->partials;
}

extern "C" void cuda_synchronize(CudaContext* ctx) {
    cudaCheck(cudaStreamSynchronize(ctx->stream));
}
