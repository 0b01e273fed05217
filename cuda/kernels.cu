// Element-wise kernels. The per-element math is hd_math.h, the same inline
// functions the CPU reference runs, so the two backends differ only where
// nvcc and gcc round differently (device expf/sinf, fused multiply-adds);
// Philox draws, dropout masks and ReLU are bit-identical.
#include "cuda_common.h"
#include "hd_math.h"
#include "map.cuh"

// ---------------------------------------------------------------- activations

struct ReluFwd {
    float* out;
    const float* inp;
    __device__ void operator()(size_t i) const { out[i] = hd_relu(inp[i]); }
};
struct ReluBwd {
    float* dinp;
    const float* dout;
    const float* inp;
    __device__ void operator()(size_t i) const { dinp[i] += dout[i] * hd_relu_grad(inp[i]); }
};
struct LeakyFwd {
    float* out;
    const float* inp;
    float slope;
    __device__ void operator()(size_t i) const { out[i] = hd_leaky_relu(inp[i], slope); }
};
struct LeakyBwd {
    float* dinp;
    const float* dout;
    const float* inp;
    float slope;
    __device__ void operator()(size_t i) const {
        dinp[i] += dout[i] * hd_leaky_relu_grad(inp[i], slope);
    }
};
struct SigmoidFwd {
    float* out;
    const float* inp;
    __device__ void operator()(size_t i) const { out[i] = hd_sigmoid(inp[i]); }
};
struct SigmoidBwd {
    float* dinp;
    const float* dout;
    const float* out;
    __device__ void operator()(size_t i) const { dinp[i] += dout[i] * hd_sigmoid_grad(out[i]); }
};
// Forward and backward differ only in the destination: overwrite vs +=.
struct DropoutFwd {
    float* out;
    const float* inp;
    float p;
    uint64_t seed, stream, offset;
    __device__ void operator()(size_t i) const {
        out[i] = hd_dropout(inp[i], p, seed, stream, offset + i);
    }
};
struct DropoutBwd {
    float* dinp;
    const float* dout;
    float p;
    uint64_t seed, stream, offset;
    __device__ void operator()(size_t i) const {
        dinp[i] += hd_dropout(dout[i], p, seed, stream, offset + i);
    }
};

extern "C" void relu_forward_cuda(CudaContext* ctx, float* out, const float* inp, size_t n) {
    launch_map(ctx, ReluFwd{out, inp}, n);
}
extern "C" void relu_backward_cuda(CudaContext* ctx, float* dinp, const float* dout,
                                   const float* inp, size_t n) {
    launch_map(ctx, ReluBwd{dinp, dout, inp}, n);
}
extern "C" void leaky_relu_forward_cuda(CudaContext* ctx, float* out, const float* inp, float slope,
                                        size_t n) {
    launch_map(ctx, LeakyFwd{out, inp, slope}, n);
}
extern "C" void leaky_relu_backward_cuda(CudaContext* ctx, float* dinp, const float* dout,
                                         const float* inp, float slope, size_t n) {
    launch_map(ctx, LeakyBwd{dinp, dout, inp, slope}, n);
}
extern "C" void sigmoid_forward_cuda(CudaContext* ctx, float* out, const float* inp, size_t n) {
    launch_map(ctx, SigmoidFwd{out, inp}, n);
}
extern "C" void sigmoid_backward_cuda(CudaContext* ctx, float* dinp, const float* dout,
                                      const float* out, size_t n) {
    launch_map(ctx, SigmoidBwd{dinp, dout, out}, n);
}
extern "C" void dropout_forward_cuda(CudaContext* ctx, float* out, const float* inp, float p,
                                     uint64_t seed, uint64_t stream, uint64_t offset, size_t n) {
    launch_map(ctx, DropoutFwd{out, inp, p, seed, stream, offset}, n);
}
extern "C" void dropout_backward_cuda(CudaContext* ctx, float* dinp, const float* dout, float p,
                                      uint64_t seed, uint64_t stream, uint64_t offset, size_t n) {
    launch_map(ctx, DropoutBwd{dinp, dout, p, seed, stream, offset}, n);
}

// ---------------------------------------------------------------- RNG

struct FillUniform {
    float* out;
    uint64_t seed, stream, offset;
    __device__ void operator()(size_t i) const {
        out[i] = hd_rng_uniform(seed, stream, offset + i);
    }
};
struct FillNormal {
    float* out;
    uint64_t seed, stream, offset;
    __device__ void operator()(size_t i) const { out[i] = hd_rng_normal(seed, stream, offset + i); }
};

extern "C" void rng_fill_uniform_cuda(CudaContext* ctx, float* out, size_t n, uint64_t seed,
                                      uint64_t stream, uint64_t offset) {
    launch_map(ctx, FillUniform{out, seed, stream, offset}, n);
}
extern "C" void rng_fill_normal_cuda(CudaContext* ctx, float* out, size_t n, uint64_t seed,
                                     uint64_t stream, uint64_t offset) {
    launch_map(ctx, FillNormal{out, seed, stream, offset}, n);
}

// ---------------------------------------------------------------- optimizers

struct SgdStep {
    float* p;
    float* m;
    const float* g;
    float lr, momentum, wd;
    __device__ void operator()(size_t i) const {
        hd_sgd_update(&p[i], &m[i], g[i], lr, momentum, wd);
    }
};
struct AdamStep {
    float* p;
    float* m;
    float* v;
    const float* g;
    float lr, beta1, beta2, eps, wd, bc1, bc2;
    __device__ void operator()(size_t i) const {
        hd_adam_update(&p[i], &m[i], &v[i], g[i], lr, beta1, beta2, eps, wd, bc1, bc2);
    }
};

extern "C" void sgd_update_cuda(CudaContext* ctx, float* params, float* m, const float* grads,
                                float lr, float momentum, float weight_decay, size_t n) {
    launch_map(ctx, SgdStep{params, m, grads, lr, momentum, weight_decay}, n);
}
extern "C" void adam_update_cuda(CudaContext* ctx, float* params, float* m, float* v,
                                 const float* grads, float lr, float beta1, float beta2, float eps,
                                 float weight_decay, float bc1, float bc2, size_t n) {
    launch_map(ctx, AdamStep{params, m, v, grads, lr, beta1, beta2, eps, weight_decay, bc1, bc2},
               n);
}
