// The CUDA backend as seen from host C code: plain C, opaque handles, device
// pointers as float*. Every op mirrors a CPU function of the same name minus
// the _cuda suffix (same argument order, same shapes, same semantics), with a
// CudaContext* first. Forwards overwrite their output; backwards ACCUMULATE
// (+=) into every gradient buffer, exactly like the CPU reference.
// All launches go on the context's stream and are asynchronous; copies and
// cuda_synchronize() wait for them. Any CUDA/cuDNN/cuBLAS/NCCL failure prints
// the call, the library's message and a HINT, then exits (zs_fail).
#ifndef ZSSEG_CUDA_H
#define ZSSEG_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
// Open MPI's C++ bindings would need libmpi_cxx; the C API is all we use.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "conv.h"  // Conv2dDesc

typedef struct CudaContext CudaContext;
typedef struct DeviceArena DeviceArena;
typedef struct NcclComm NcclComm;

// ---------------------------------------------------------------- devices
// Number of usable GPUs; 0 when there is no GPU, no driver, or any error
// (never fails, so CPU-only machines can ask).
int cuda_device_count(void);
// One GPU per rank: device local_rank % count. Stops with an error when there
// is no GPU, or when local_rank >= count unless allow_sharing (ranks sharing a
// GPU work for kernels but not for NCCL, which refuses two ranks on one GPU).
void cuda_device_select(int local_rank, int allow_sharing);

// ---------------------------------------------------------------- context
// Stream, cuDNN and cuBLAS handles, conv workspace and algorithm cache for the
// current device. tf32: allow TF32 tensor-core math in convs and GEMMs (faster,
// ~1e-3 relative error). deterministic: only bitwise-reproducible cuDNN
// algorithms (run-to-run identical gradients, possibly slower).
CudaContext* cuda_context_create(int tf32, int deterministic);
void cuda_context_destroy(CudaContext* ctx);
// Wait for everything queued on the context's stream.
void cuda_synchronize(CudaContext* ctx);

// ---------------------------------------------------------------- memory
// One cudaMalloc up front, then 256-byte aligned bump allocation: no cudaMalloc
// (which synchronises the device) in the training loop.
DeviceArena* device_arena_create(size_t bytes);
// Stops with an error naming requested and free bytes when the arena is full.
void* device_arena_alloc(DeviceArena* a, size_t bytes);
size_t device_arena_free_bytes(const DeviceArena* a);
// Forget every allocation (memory is kept for reuse, not cleared).
void device_arena_reset(DeviceArena* a);
void device_arena_destroy(DeviceArena* a);

// Blocking copies; they run after all work already queued on any context
// stream (context streams are blocking streams, ordered with the legacy
// default stream that cudaMemcpy uses).
void cuda_memcpy_h2d(void* dst, const void* src, size_t bytes);
void cuda_memcpy_d2h(void* dst, const void* src, size_t bytes);
// Page-locked host memory: faster and truly asynchronous host<->device copies.
void* cuda_pinned_alloc(size_t bytes);
void cuda_pinned_free(void* p);

// ---------------------------------------------------------------- convolution (cuDNN)
// As conv2d_forward/conv2d_backward (conv.h) without the im2col workspace: the
// context owns cuDNN's. The algorithm is chosen once per shape by cuDNN's
// heuristics and cached in the context.
void conv2d_forward_cuda(CudaContext* ctx,
                         float* out,           // (B, C_out, Ho, Wo)
                         const float* inp,     // (B, C_in, H, W)
                         const float* weight,  // (C_out, C_in, kh, kw)
                         const float* bias,    // (C_out) or NULL
                         const Conv2dDesc* d, int B, int H, int W);
// ACCUMULATES (+=) into dinp, dweight, dbias.
void conv2d_backward_cuda(CudaContext* ctx,
                          float* dinp,          // (B, C_in, H, W) or NULL; accumulated
                          float* dweight,       // (C_out, C_in, kh, kw); accumulated
                          float* dbias,         // (C_out) or NULL; accumulated
                          const float* dout,    // (B, C_out, Ho, Wo)
                          const float* inp,     // (B, C_in, H, W)
                          const float* weight,  // (C_out, C_in, kh, kw)
                          const Conv2dDesc* d, int B, int H, int W);

// ---------------------------------------------------------------- GEMM (cuBLAS)
// Row-major C = alpha * op(A) @ op(B) + beta * C, op(X) = X or X^T.
void gemm_cuda(CudaContext* ctx, int transA, int transB, int M, int N, int K, float alpha,
               const float* A,  // (M, K), or (K, M) when transA
               const float* B,  // (K, N), or (N, K) when transB
               float beta,
               float* C);  // (M, N)

// ---------------------------------------------------------------- element-wise (activation.h)
void relu_forward_cuda(CudaContext* ctx,
                       float* out,        // (n)
                       const float* inp,  // (n)
                       size_t n);
void relu_backward_cuda(CudaContext* ctx,
                        float* dinp,        // (n); accumulated
                        const float* dout,  // (n)
                        const float* inp,   // (n) forward input
                        size_t n);
void leaky_relu_forward_cuda(CudaContext* ctx,
                             float* out,        // (n)
                             const float* inp,  // (n)
                             float slope, size_t n);
void leaky_relu_backward_cuda(CudaContext* ctx,
                              float* dinp,        // (n); accumulated
                              const float* dout,  // (n)
                              const float* inp,   // (n) forward input
                              float slope, size_t n);
void sigmoid_forward_cuda(CudaContext* ctx,
                          float* out,        // (n)
                          const float* inp,  // (n)
                          size_t n);
void sigmoid_backward_cuda(CudaContext* ctx,
                           float* dinp,        // (n); accumulated
                           const float* dout,  // (n)
                           const float* out,   // (n) forward output
                           size_t n);
// Same mask as the CPU for the same (seed, stream, offset): element i dropped
// iff hd_rng_uniform(seed, stream, offset + i) < p.
void dropout_forward_cuda(CudaContext* ctx,
                          float* out,        // (n)
                          const float* inp,  // (n)
                          float p, uint64_t seed, uint64_t stream, uint64_t offset, size_t n);
void dropout_backward_cuda(CudaContext* ctx,
                           float* dinp,        // (n); accumulated
                           const float* dout,  // (n)
                           float p, uint64_t seed, uint64_t stream, uint64_t offset, size_t n);

// ---------------------------------------------------------------- RNG (rng.h)
// out[i] = hd_rng_uniform / hd_rng_normal(seed, stream, offset + i).
void rng_fill_uniform_cuda(CudaContext* ctx,
                           float* out,  // (n)
                           size_t n, uint64_t seed, uint64_t stream, uint64_t offset);
void rng_fill_normal_cuda(CudaContext* ctx,
                          float* out,  // (n)
                          size_t n, uint64_t seed, uint64_t stream, uint64_t offset);

// ---------------------------------------------------------------- optimizers (optim.h)
// One parameter group's update over a contiguous range, per-element formulas
// hd_sgd_update / hd_adam_update; the caller loops over groups as
// optimizer_step does. bc1 = 1 - beta1^t, bc2 = 1 - beta2^t.
void sgd_update_cuda(CudaContext* ctx,
                     float* params,       // (n) updated in place
                     float* m,            // (n) momentum buffer
                     const float* grads,  // (n)
                     float lr, float momentum, float weight_decay, size_t n);
void adam_update_cuda(CudaContext* ctx,
                      float* params,       // (n) updated in place
                      float* m,            // (n) first moment
                      float* v,            // (n) second moment
                      const float* grads,  // (n)
                      float lr, float beta1, float beta2, float eps, float weight_decay, float bc1,
                      float bc2, size_t n);

// ---------------------------------------------------------------- NCCL
// Collective over comm: rank 0 makes the NCCL id and broadcasts it with MPI.
// Call after cuda_device_select on every rank.
NcclComm* nccl_comm_init(MPI_Comm comm);
// In-place sum over all ranks, queued on the context's stream.
void nccl_allreduce_sum(NcclComm* nc,
                        float* buf,  // (n) device
                        size_t n, CudaContext* ctx);
void nccl_comm_destroy(NcclComm* nc);

#ifdef __cplusplus
}
#endif

#endif  // ZSSEG_CUDA_H
