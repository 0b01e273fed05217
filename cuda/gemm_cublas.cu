// Row-major GEMM on cuBLAS (column-major): a row-major (R, C) matrix is the
// column-major (C, R) matrix, its transpose. So C = op(A) op(B) row-major is
// C^T = op(B)^T op(A)^T column-major: swap the operands and M with N, keep the
// op flags, and use the row lengths as leading dimensions.
#include "cuda_common.h"

extern "C" void gemm_cuda(CudaContext* ctx, int transA, int transB, int M, int N, int K,
                          float alpha, const float* A, const float* B, float beta, float* C) {
    if (M == 0 || N == 0) return;
    cublasOperation_t opA = transA ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t opB = transB ? CUBLAS_OP_T : CUBLAS_OP_N;
    // row lengths as stored; cuBLAS wants >= 1 even when K == 0 (C = beta * C)
    int lda = transA ? M : (K > 0 ? K : 1);
    int ldb = transB ? (K > 0 ? K : 1) : N;
    if (ctx->tf32) {
        // fp32 storage, inputs rounded to TF32 inside the tensor cores
        cublasCheck(cublasGemmEx(ctx->cublas, opB, opA, N, M, K, &alpha, B, CUDA_R_32F, ldb, A,
                                 CUDA_R_32F, lda, &beta, C, CUDA_R_32F, N,
                                 CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT));
    } else {
        cublasCheck(
            cublasSgemm(ctx->cublas, opB, opA, N, M, K, &alpha, B, ldb, A, lda, &beta, C, N));
    }
}
