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

#include "backbone.h"
#include "context_module.h"
#include "conv.h"  // Conv2dDesc
#include "disc_cls.h"
#include "generator.h"

typedef struct CudaContext CudaContext;
typedef struct DeviceArena DeviceArena;
typedef struct NcclComm NcclComm;

// ---------------------------------------------------------------- devices
// Number of usable GPUs; 0 when there is no GPU, no driver, or any error
// (never fails, so CPU-only machines can ask).
int cuda_device_count(void);
// Make device local_rank % count current for this thread and return its
// index; uuid (16 bytes) identifies the physical GPU (ranks compare them to
// find sharing: device_find_shared), desc gets a one-line description. Stops
// with an error when there is no GPU.
int cuda_device_select(int local_rank, unsigned char* uuid, char* desc, size_t n);
// Free and total memory of the current device, bytes.
void cuda_memory_info(size_t* free_bytes, size_t* total_bytes);

// Register the CUDA DeviceBackend (src/device_backend.h) for the trainer.
void cuda_backend_register(void);

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
// An arena that only counts: its allocations are fake (never dereference
// them) and device_arena_used says how big a real one must be for the same
// sequence of allocations, alignment included.
DeviceArena* device_arena_measure(void);
size_t device_arena_used(const DeviceArena* a);
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
                          float* dweight,       // (C_out, C_in, kh, kw) or NULL; accumulated
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

// ---------------------------------------------------------------- layout / glue (kernels_glue.cu)
// Mirrors of batchnorm.h, pool.h, resize.h and tensor_ops.h. Backwards that
// scatter (max pool, bilinear resize) are written as gathers: each input
// element sums its contributions in a fixed order (no atomics, deterministic).
void fill_cuda(CudaContext* ctx,
               float* p,  // (n)
               float value, size_t n);
// y += alpha * x
void axpy_cuda(CudaContext* ctx,
               float* y,        // (n); accumulated
               const float* x,  // (n)
               float alpha, size_t n);
// Folds on the device with hd_bn_fold (double math, as frozen_bn_fold).
void frozen_bn_fold_cuda(CudaContext* ctx,
                         float* scale,        // (C)
                         float* shift,        // (C)
                         const float* mean,   // (C)
                         const float* var,    // (C)
                         const float* gamma,  // (C)
                         const float* beta,   // (C)
                         float eps, int C);
void frozen_bn_forward_cuda(CudaContext* ctx,
                            float* out,          // (B, C, HW); may == inp
                            const float* inp,    // (B, C, HW)
                            const float* scale,  // (C)
                            const float* shift,  // (C)
                            int B, int C, int HW);
void frozen_bn_backward_cuda(CudaContext* ctx,
                             float* dinp,         // (B, C, HW); accumulated
                             const float* dout,   // (B, C, HW)
                             const float* scale,  // (C)
                             int B, int C, int HW);
void maxpool2d_forward_cuda(CudaContext* ctx,
                            float* out,        // (B, C, Ho, Wo)
                            int* argmax,       // (B, C, Ho, Wo) flat index into the H*W plane
                            const float* inp,  // (B, C, H, W)
                            int B, int C, int H, int W, int k, int stride, int pad,
                            int ceil_mode);
void maxpool2d_backward_cuda(CudaContext* ctx,
                             float* dinp,        // (B, C, H, W); accumulated
                             const float* dout,  // (B, C, Ho, Wo)
                             const int* argmax,  // (B, C, Ho, Wo)
                             int B, int C, int H, int W, int Ho, int Wo, int k, int stride,
                             int pad);
void resize_bilinear_forward_cuda(CudaContext* ctx,
                                  float* out,        // (B, C, Ho, Wo)
                                  const float* inp,  // (B, C, H, W)
                                  int B, int C, int H, int W, int Ho, int Wo, int align_corners);
void resize_bilinear_backward_cuda(CudaContext* ctx,
                                   float* dinp,        // (B, C, H, W); accumulated
                                   const float* dout,  // (B, C, Ho, Wo)
                                   int B, int C, int H, int W, int Ho, int Wo,
                                   int align_corners);
void resize_nearest_labels_cuda(CudaContext* ctx,
                                uint8_t* out,        // (B, Ho, Wo)
                                const uint8_t* inp,  // (B, H, W)
                                int B, int H, int W, int Ho, int Wo);
// inputs / dinputs: HOST arrays of k device pointers (k <= 8).
void max_fuse_forward_cuda(CudaContext* ctx,
                           float* out,                  // (n)
                           uint8_t* which,              // (n)
                           const float* const* inputs,  // k pointers, each (n)
                           int k, size_t n);
void max_fuse_backward_cuda(CudaContext* ctx,
                            float* const* dinputs,  // k pointers, (n) or NULL; accumulated
                            const float* dout,      // (n)
                            const uint8_t* which,   // (n)
                            int k, size_t n);
// One piece of a channel concat: out[:, c0:c0+C] = inp (B, C, HW) inside
// (B, Ctot, HW); the backward adds the slice back. concat = k calls.
void copy_channels_cuda(CudaContext* ctx,
                        float* out,        // (B, Ctot, HW)
                        const float* inp,  // (B, C, HW)
                        int B, int C, int Ctot, int c0, int HW);
void slice_channels_forward_cuda(CudaContext* ctx,
                                 float* out,        // (B, Cs, HW)
                                 const float* inp,  // (B, C, HW)
                                 int B, int C, int HW, int c0, int Cs);
void slice_channels_backward_cuda(CudaContext* ctx,
                                  float* dinp,        // (B, C, HW); accumulated in [c0, c0+Cs)
                                  const float* dout,  // (B, Cs, HW)
                                  int B, int C, int HW, int c0, int Cs);
void add_forward_cuda(CudaContext* ctx,
                      float* out,      // (n)
                      const float* a,  // (n)
                      const float* b,  // (n)
                      size_t n);
void mul_forward_cuda(CudaContext* ctx,
                      float* out,      // (n)
                      const float* a,  // (n)
                      const float* b,  // (n)
                      size_t n);
void mul_backward_cuda(CudaContext* ctx,
                       float* da,          // (n) or NULL; accumulated
                       float* db,          // (n) or NULL; accumulated
                       const float* dout,  // (n)
                       const float* a,     // (n)
                       const float* b,     // (n)
                       size_t n);
void scale_by_map_forward_cuda(CudaContext* ctx,
                               float* out,      // (B, C, HW)
                               const float* x,  // (B, C, HW)
                               const float* s,  // (B, 1, HW)
                               int B, int C, int HW);
void scale_by_map_backward_cuda(CudaContext* ctx,
                                float* dx,          // (B, C, HW) or NULL; accumulated
                                float* ds,          // (B, 1, HW) or NULL; accumulated
                                const float* dout,  // (B, C, HW)
                                const float* x,     // (B, C, HW)
                                const float* s,     // (B, 1, HW)
                                int B, int C, int HW);
// emap[b, e, p] = emb[lbl[b, p], e], 0 where lbl == 255 (cagnet.c embed_labels).
void embed_labels_cuda(CudaContext* ctx,
                       float* emap,         // (B, E, HW)
                       const float* emb,    // (K, E)
                       const uint8_t* lbl,  // (B, HW)
                       int B, int E, int HW);
// valid[i] = lbl[i] != 255 (valid may be NULL); returns the count (synchronises).
double count_valid_cuda(CudaContext* ctx,
                        uint8_t* valid,      // (n) or NULL
                        const uint8_t* lbl,  // (n)
                        size_t n);
// out[r, :] = X[b, :, p] for row r, pixel pos[r] = b*HW + p (feature rows for MMD);
// the backward adds dRows back.
void gather_rows_cuda(CudaContext* ctx,
                      float* rows,       // (R, C)
                      const float* X,    // (B, C, HW)
                      const int* pos,    // (R) device
                      int R, int C, int HW);
void scatter_rows_add_cuda(CudaContext* ctx,
                           float* dX,          // (B, C, HW); accumulated
                           const float* drows, // (R, C)
                           const int* pos,     // (R) device, distinct pixels
                           int R, int C, int HW);

// ---------------------------------------------------------------- losses (loss_cuda.cu)
// Mirrors of loss.h: same returns (the scalar loss, synchronising to read it),
// gradients ACCUMULATED with grad_scale. Sums are reduced in double over a
// fixed partition and combined in a fixed order (no atomics): bitwise
// run-to-run stable. labels/mask/valid/weights are device pointers; sigmas
// and the group offsets are host arrays.
float softmax_ce_forward_backward_cuda(CudaContext* ctx,
                                       float* dlogits,         // (B, K, HW) or NULL; accumulated
                                       const float* logits,    // (B, K, HW)
                                       const uint8_t* labels,  // (B, HW)
                                       const float* weights,   // (B, HW) or NULL
                                       int B, int K, int HW, float grad_scale);
float gan_loss_forward_backward_cuda(CudaContext* ctx,
                                     float* dx,            // (n) or NULL; accumulated
                                     const float* x,       // (n)
                                     const uint8_t* mask,  // (n) or NULL
                                     int kind, float target, size_t n, float grad_scale);
float kl_forward_backward_cuda(CudaContext* ctx,
                               float* dmu,            // (B, C, HW) or NULL; accumulated
                               float* dlogvar,        // (B, C, HW) or NULL; accumulated
                               const float* mu,       // (B, C, HW)
                               const float* logvar,   // (B, C, HW)
                               const uint8_t* valid,  // (B, HW) or NULL
                               int B, int C, int HW, float grad_scale);
float mse_forward_backward_cuda(CudaContext* ctx,
                                float* da,             // (B, C, HW) or NULL; accumulated
                                const float* a,        // (B, C, HW)
                                const float* b,        // (B, C, HW)
                                const uint8_t* valid,  // (B, HW) or NULL
                                int B, int C, int HW, float grad_scale);
float mmd_grouped_forward_backward_cuda(CudaContext* ctx,
                                        float* dX,            // (x_start[n_groups], D) or NULL
                                        const float* X,       // (x_start[n_groups], D)
                                        const float* Y,       // (y_start[n_groups], D)
                                        const int* x_start,   // (n_groups + 1) host
                                        const int* y_start,   // (n_groups + 1) host
                                        int n_groups, int D,
                                        const float* sigmas,  // (S) host
                                        int S,
                                        float* ws,  // (mmd_grouped_workspace_floats) device
                                        float grad_scale);

// ---------------------------------------------------------------- modules (backbone_cuda.cu, heads_cuda.cu)
// The CPU modules' structs with DEVICE pointers: *_acts_alloc_cuda lays the
// activations out in the arena exactly like the CPU alloc; params, grads and
// ws are device buffers of the CPU sizes (pt->total, *_workspace_floats).
// Same semantics as the CPU functions (forwards overwrite, backwards accumulate).
void backbone_acts_alloc_cuda(BackboneActs* a, const Backbone* bb, int B, int H, int W,
                              DeviceArena* arena);
void backbone_forward_cuda(CudaContext* ctx, const Backbone* bb, const float* params,
                           BackboneActs* a, const float* img, float* ws);
// Told, as the backward goes, that every gradient at offsets >= done_from is
// final (queued on the stream): how the trainer starts reducing buckets
// during the backward. NULL: nobody listens.
typedef struct {
    void (*fn)(void* arg, size_t done_from);
    void* arg;
} GradReady;
void backbone_backward_cuda(CudaContext* ctx, const Backbone* bb, const float* params,
                            float* grads, const BackboneActs* a, const float* dh, float* ws,
                            const GradReady* ready);
void cm_acts_alloc_cuda(CmActs* a, const Cm* m, int B, int H, int W, DeviceArena* arena);
void cm_forward_cuda(CudaContext* ctx, const Cm* m, const float* params, CmActs* a,
                     const float* h, int scale, const StepRng* rng, float* ws);
void cm_backward_cuda(CudaContext* ctx, const Cm* m, const float* params, float* grads,
                      const CmActs* a, const float* h, const float* dx, const float* dmu,
                      const float* dlogvar, float* dh, float* ws);
void gen_acts_alloc_cuda(GenActs* a, const Gen* g, int B, int H, int W, DeviceArena* arena);
void gen_forward_cuda(CudaContext* ctx, const Gen* g, const float* params, GenActs* a,
                      const float* e, const float* l, const StepRng* rng, float* ws);
void gen_backward_cuda(CudaContext* ctx, const Gen* g, const float* params, float* grads,
                       const GenActs* a, const float* dfake, float* ws);
void dc_acts_alloc_cuda(DcActs* a, const Dc* dc, int B, int H, int W, DeviceArena* arena);
void dc_forward_cuda(CudaContext* ctx, const Dc* dc, const float* params, DcActs* a,
                     const float* x, int layer_id, const StepRng* rng, float* ws);
void dc_backward_cuda(CudaContext* ctx, const Dc* dc, const float* params, float* grads,
                      const DcActs* a, const float* x, const float* dgan, const float* dcls,
                      float* dx, float* ws);
// conv_layer.h on the device (cuDNN; 1x1 layers too, so the bias path is one).
void conv_layer_forward_cuda(CudaContext* ctx, const ConvLayer* l, const float* params,
                             float* out, const float* inp, int B, int H, int W);
void conv_layer_backward_cuda(CudaContext* ctx, const ConvLayer* l, const float* params,
                              float* grads, float* dinp, const float* dout, const float* inp,
                              int B, int H, int W);

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
