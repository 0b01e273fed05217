// Per-element math shared by the CPU reference and the CUDA kernels.
// Everything here is `static inline` and compiled by gcc and nvcc alike, so the
// CPU tests check exactly the formulas the GPU runs.
#ifndef ZSSEG_HD_MATH_H
#define ZSSEG_HD_MATH_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __CUDACC__
#define HD __host__ __device__ static inline
#else
#define HD static inline
#endif

// ---------------------------------------------------------------- activations

HD float hd_sigmoid(float x) {
    // two branches so exp never overflows
    if (x >= 0.0f) { float e = expf(-x); return 1.0f / (1.0f + e); }
    float e = expf(x);
    return e / (1.0f + e);
}
// d sigmoid / dx from the forward output s = sigmoid(x)
HD float hd_sigmoid_grad(float s) { return s * (1.0f - s); }
HD float hd_relu(float x) { return x > 0.0f ? x : 0.0f; }
HD float hd_relu_grad(float x) { return x > 0.0f ? 1.0f : 0.0f; }
HD float hd_leaky_relu(float x, float slope) { return x > 0.0f ? x : slope * x; }
HD float hd_leaky_relu_grad(float x, float slope) { return x > 0.0f ? 1.0f : slope; }
// log(1 + exp(x)) without overflow
HD float hd_softplus(float x) { return x > 0.0f ? x + log1pf(expf(-x)) : log1pf(expf(x)); }

// ---------------------------------------------------------------- contextual module
// Reparameterisation z = mu + exp(lv/2) * eps, and dz/dlv.
HD float hd_reparam(float mu, float lv, float eps) { return mu + expf(0.5f * lv) * eps; }
HD float hd_reparam_dlv(float lv, float eps) { return 0.5f * expf(0.5f * lv) * eps; }
// CaGNet's real feature x = sigmoid(h + h * sigmoid(z)).
HD float hd_cm_feature(float h, float z) { return hd_sigmoid(h + h * hd_sigmoid(z)); }
// Its gradients w.r.t. h and z from the output x and dx (overwrites *dh, *dz).
HD void hd_cm_feature_grad(float h, float z, float x, float dx, float* dh, float* dz) {
    float sz = hd_sigmoid(z);
    float da = dx * x * (1.0f - x);
    *dh = da * (1.0f + sz);
    *dz = da * h * sz * (1.0f - sz);
}

// ---------------------------------------------------------------- GAN losses
// All take the discriminator logit x, score s = sigmoid(x), target t in {0,1}.
// Loss per sample and d(loss)/dx are returned; the caller averages.
enum { GAN_L1 = 0, GAN_LSGAN = 1, GAN_BCE = 2 };

HD float hd_gan_loss(int kind, float x, float t, float* dx) {
    float s = hd_sigmoid(x);
    float ds = s * (1.0f - s);  // d s / d x
    if (kind == GAN_L1) {
        float d = s - t;
        *dx = (d > 0.0f ? 1.0f : (d < 0.0f ? -1.0f : 0.0f)) * ds;
        return fabsf(d);
    }
    if (kind == GAN_LSGAN) {
        float d = s - t;
        *dx = 2.0f * d * ds;
        return d * d;
    }
    // BCE from the logit: t*softplus(-x) + (1-t)*softplus(x)
    *dx = s - t;
    return t * hd_softplus(-x) + (1.0f - t) * hd_softplus(x);
}

// ---------------------------------------------------------------- KL to N(0,I)
// -1/2 (1 + lv - mu^2 - e^lv) for one (pixel, channel); gradients w.r.t. mu, lv.
HD float hd_kl(float mu, float lv, float* dmu, float* dlv) {
    float e = expf(lv);
    *dmu = mu;
    *dlv = -0.5f * (1.0f - e);
    return -0.5f * (1.0f + lv - mu * mu - e);
}

// ---------------------------------------------------------------- other losses
// Squared error (a - b)^2 of one element and its gradient w.r.t. a.
HD float hd_sq_err(float a, float b, float* da) {
    float d = a - b;
    *da = 2.0f * d;
    return d * d;
}

// Softmax cross-entropy of one pixel whose K logits are z[k * stride] (NCHW:
// stride = H*W), label y in [0, K). Stable log-sum-exp (max subtracted).
// If dz is non-NULL, ACCUMULATES g * (softmax(z) - onehot(y)) into dz[k * stride].
HD float hd_softmax_ce(const float* z, size_t stride, int K, int y, float g, float* dz) {
    float m = z[0];
    for (int k = 1; k < K; k++) m = fmaxf(m, z[(size_t)k * stride]);
    float s = 0.0f;
    for (int k = 0; k < K; k++) s += expf(z[(size_t)k * stride] - m);
    float lse = m + logf(s);
    if (dz) {
        for (int k = 0; k < K; k++) {
            size_t o = (size_t)k * stride;
            dz[o] += g * (expf(z[o] - lse) - (k == y ? 1.0f : 0.0f));
        }
    }
    return lse - z[(size_t)y * stride];
}

// Multi-bandwidth RBF kernel of a squared distance d, as the GMMN / CaGNet
// reference writes it: sum_s exp(-d / (2 sigma_s)) (sigma, not sigma^2), but
// returned minus S, i.e. as sum_s expm1(-d / (2 sigma_s)): MMD2's three means
// cancel the constant exactly, and near-identical features (sigmoid outputs,
// d << sigma) keep their digits instead of losing them to 1 - 1.
// *dk = d(kernel)/dd.
HD float hd_rbf_multi(float d, const float* sigmas, int S, float* dk) {
    float k = 0.0f, g = 0.0f;
    for (int s = 0; s < S; s++) {
        float inv = 0.5f / sigmas[s];
        float e = expm1f(-d * inv);
        k += e;
        g -= (e + 1.0f) * inv;
    }
    *dk = g;
    return k;
}

// ---------------------------------------------------------------- optimizers
// PyTorch semantics: L2 weight decay is added to the gradient first.
// SGD momentum, dampening 0: buf = m*buf + g; p -= lr*buf (buf starts at 0,
// which equals PyTorch's "buf = g" on the first step).
HD void hd_sgd_update(float* p, float* buf, float g, float lr, float momentum, float wd) {
    g += wd * *p;
    *buf = momentum * *buf + g;
    *p -= lr * *buf;
}
// Adam with bias corrections bc1 = 1 - beta1^t, bc2 = 1 - beta2^t precomputed.
HD void hd_adam_update(float* p, float* m, float* v, float g, float lr, float beta1, float beta2,
                       float eps, float wd, float bc1, float bc2) {
    g += wd * *p;
    *m = beta1 * *m + (1.0f - beta1) * g;
    *v = beta2 * *v + (1.0f - beta2) * g * g;
    float denom = sqrtf(*v) / sqrtf(bc2) + eps;
    *p -= (lr / bc1) * (*m / denom);
}

// ---------------------------------------------------------------- RNG
// Philox4x32-10 (Salmon et al., SC'11): a counter-based generator, so any draw
// is a pure function of (seed, stream, counter) on any rank, device or resume.
typedef struct { uint32_t v[4]; } Philox4;

HD uint32_t hd_mulhilo32(uint32_t a, uint32_t b, uint32_t* hi) {
    uint64_t p = (uint64_t)a * (uint64_t)b;
    *hi = (uint32_t)(p >> 32);
    return (uint32_t)p;
}

HD Philox4 hd_philox4x32_10(Philox4 ctr, uint32_t k0, uint32_t k1) {
    for (int r = 0; r < 10; r++) {
        uint32_t hi0, hi1;
        uint32_t lo0 = hd_mulhilo32(0xD2511F53u, ctr.v[0], &hi0);
        uint32_t lo1 = hd_mulhilo32(0xCD9E8D57u, ctr.v[2], &hi1);
        Philox4 n;
        n.v[0] = hi1 ^ ctr.v[1] ^ k0;
        n.v[1] = lo1;
        n.v[2] = hi0 ^ ctr.v[3] ^ k1;
        n.v[3] = lo0;
        ctr = n;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return ctr;
}

// One block of 4 words for (seed, stream, block index).
HD Philox4 hd_rng_block(uint64_t seed, uint64_t stream, uint64_t block) {
    Philox4 c;
    c.v[0] = (uint32_t)block;
    c.v[1] = (uint32_t)(block >> 32);
    c.v[2] = (uint32_t)stream;
    c.v[3] = (uint32_t)(stream >> 32);
    return hd_philox4x32_10(c, (uint32_t)seed, (uint32_t)(seed >> 32));
}

// uint32 -> float strictly inside (0, 1): safe for log() in Box-Muller.
// 23 bits, so k + 0.5 is exact in a float; with 24 bits the top value rounds
// up to 2^24 and the result is exactly 1.0f. Range [2^-24, 1 - 2^-24].
HD float hd_u32_to_unit(uint32_t u) { return ((float)(u >> 9) + 0.5f) * (1.0f / 8388608.0f); }

// Draw number i of a stream: uniform in (0,1).
HD float hd_rng_uniform(uint64_t seed, uint64_t stream, uint64_t i) {
    Philox4 b = hd_rng_block(seed, stream, i >> 2);
    return hd_u32_to_unit(b.v[i & 3]);
}

// Draw number i of a stream: standard normal (Box-Muller on one block; even i
// takes the cosine branch, odd i the sine branch of the same pair).
HD float hd_rng_normal(uint64_t seed, uint64_t stream, uint64_t i) {
    Philox4 b = hd_rng_block(seed, stream, i >> 1);
    float u1 = hd_u32_to_unit(b.v[0]);
    float u2 = hd_u32_to_unit(b.v[1]);
    float r = sqrtf(-2.0f * logf(u1));
    float a = 6.2831853071795864f * u2;
    return (i & 1) ? r * sinf(a) : r * cosf(a);
}

// Draw number i of a stream: unbiased integer in [0, n), n >= 1 (Lemire's
// multiply-shift with rejection). The first attempt reads the same word as
// hd_rng_uniform(seed, stream, i); attempt k > 0 (probability < n / 2^32 each)
// reads that word in block (i >> 2) + k * 2^56, so i must stay below 2^58.
HD uint32_t hd_rng_uint_below(uint64_t seed, uint64_t stream, uint64_t i, uint32_t n) {
    uint32_t t = (0u - n) % n;  // 2^32 mod n: products whose low half is below t are the surplus
    for (uint64_t k = 0;; k++) {
        Philox4 b = hd_rng_block(seed, stream, (i >> 2) + (k << 56));
        uint64_t m = (uint64_t)b.v[i & 3] * n;
        if ((uint32_t)m >= t) return (uint32_t)(m >> 32);
    }
}

// ---------------------------------------------------------------- dropout
// Inverted dropout of value x at element i: dropped iff draw i < p, kept
// values divided by (1 - p). Forward (x = input) and backward (x = dout) use
// the same key, so no mask is stored.
HD float hd_dropout(float x, float p, uint64_t seed, uint64_t stream, uint64_t i) {
    return hd_rng_uniform(seed, stream, i) < p ? 0.0f : x / (1.0f - p);
}

// ---------------------------------------------------------------- frozen batch norm
// scale = gamma / sqrt(var + eps), shift = beta - mean * scale, in double so
// the fold adds no rounding of its own to the per-channel affine.
HD void hd_bn_fold(float mean, float var, float gamma, float beta, float eps, float* scale,
                   float* shift) {
    double s = (double)gamma / sqrt((double)var + (double)eps);
    *scale = (float)s;
    *shift = (float)((double)beta - (double)mean * s);
}

// ---------------------------------------------------------------- max pooling
// PyTorch's rule: pad <= k/2 and the padded input holds a whole window, so
// every window holds an input pixel.
HD int hd_maxpool_geometry_ok(int H, int W, int k, int stride, int pad) {
    return k >= 1 && stride >= 1 && pad >= 0 && pad <= k / 2 && H + 2 * pad >= k &&
           W + 2 * pad >= k;
}
// Window of output (oy, ox) over one (H, W) plane, clipped to the input
// (padding never wins): the first maximum in raster order, NaN propagates.
// Returns its flat index into the plane and its value in *m.
HD int hd_maxpool_window(const float* x, int H, int W, int oy, int ox, int k, int stride, int pad,
                         float* m) {
    int y0 = oy * stride - pad, y1 = y0 + k < H ? y0 + k : H;
    int x0 = ox * stride - pad, x1 = x0 + k < W ? x0 + k : W;
    if (y0 < 0) y0 = 0;
    if (x0 < 0) x0 = 0;
    int best = y0 * W + x0;
    float v0 = x[best];
    for (int iy = y0; iy < y1; iy++)
        for (int ix = x0; ix < x1; ix++) {
            float v = x[iy * W + ix];
            if (v > v0 || isnan(v)) {
                v0 = v;
                best = iy * W + ix;
            }
        }
    *m = v0;
    return best;
}

// ---------------------------------------------------------------- multi-scale max fusion
// Element i of the max over k maps: returns the winning map (strict >, so the
// first one on ties) and its value in *m.
HD int hd_max_fuse(const float* const* inputs, int k, size_t i, float* m) {
    float best = inputs[0][i];
    int w = 0;
    for (int j = 1; j < k; j++)
        if (inputs[j][i] > best) {
            best = inputs[j][i];
            w = j;
        }
    *m = best;
    return w;
}

// ---------------------------------------------------------------- resize
// PyTorch F.interpolate with an output size (no scale_factor), in float as
// PyTorch computes it (area_pixel_compute_scale / _source_index).
HD float hd_resize_scale(int in, int out, int align_corners) {
    if (align_corners) return out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.0f;
    return (float)in / (float)out;
}
// Bilinear taps of output index dst along one axis: i0, i1 = min(i0+1, in-1)
// and the weight of i1 (that of i0 is 1 - w1).
HD void hd_bilinear_taps(float scale, int dst, int in, int align_corners, int* i0, int* i1,
                         float* w1) {
    float src = align_corners ? scale * (float)dst : scale * ((float)dst + 0.5f) - 0.5f;
    if (src < 0.0f) src = 0.0f;
    int i = (int)floorf(src);
    if (i > in - 1) i = in - 1;
    float l = src - (float)i;
    *i0 = i;
    *i1 = i < in - 1 ? i + 1 : i;
    *w1 = l < 0.0f ? 0.0f : (l > 1.0f ? 1.0f : l);
}
// Bilinear blend of the four taps v<row><col> with the weights of rows/cols 1.
HD float hd_bilerp(float v00, float v01, float v10, float v11, float lh, float lw) {
    return (1.0f - lh) * ((1.0f - lw) * v00 + lw * v01) + lh * ((1.0f - lw) * v10 + lw * v11);
}
// mode='nearest': src = min(floor(dst * (float)in/out), in - 1)
HD int hd_nearest_src(int dst, int in, int out) {
    int i = (int)floorf((float)dst * ((float)in / (float)out));
    return i < in - 1 ? i : in - 1;
}

#endif  // ZSSEG_HD_MATH_H
