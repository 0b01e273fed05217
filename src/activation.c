// Element-wise activations and dropout; see activation.h.
#include "activation.h"

#include <string.h>

#include "hd_math.h"

void relu_forward(float* out, const float* inp, size_t n) {
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) out[i] = hd_relu(inp[i]);
}

void relu_backward(float* dinp, const float* dout, const float* inp, size_t n) {
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) dinp[i] += dout[i] * hd_relu_grad(inp[i]);
}

void leaky_relu_forward(float* out, const float* inp, float slope, size_t n) {
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) out[i] = hd_leaky_relu(inp[i], slope);
}

void leaky_relu_backward(float* dinp, const float* dout, const float* inp, float slope, size_t n) {
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) dinp[i] += dout[i] * hd_leaky_relu_grad(inp[i], slope);
}

void sigmoid_forward(float* out, const float* inp, size_t n) {
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) out[i] = hd_sigmoid(inp[i]);
}

void sigmoid_backward(float* dinp, const float* dout, const float* out, size_t n) {
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) dinp[i] += dout[i] * hd_sigmoid_grad(out[i]);
}

void dropout_forward(float* out, const float* inp, float p, uint64_t seed, uint64_t stream,
                     uint64_t offset, size_t n) {
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) out[i] = hd_dropout(inp[i], p, seed, stream, offset + i);
}

void dropout_backward(float* dinp, const float* dout, float p, uint64_t seed, uint64_t stream,
                      uint64_t offset, size_t n) {
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) dinp[i] += hd_dropout(dout[i], p, seed, stream, offset + i);
}

static int dropout_batch_active(float p, const StepRng* rng) { return rng->training && p > 0.0f; }

static uint64_t dropout_batch_stream(const StepRng* rng, int b) {
    return rng_stream(RNG_DROPOUT, (uint64_t)rng->iter, (uint64_t)rng->sample0 + (uint64_t)b);
}

void dropout_batch_forward(float* out, const float* inp, float p, const StepRng* rng, int layer,
                           int B, size_t n) {
    if (!dropout_batch_active(p, rng)) {
        if (out != inp) memcpy(out, inp, (size_t)B * n * sizeof(float));
        return;
    }
    for (int b = 0; b < B; b++)
        dropout_forward(out + b * n, inp + b * n, p, rng->seed, dropout_batch_stream(rng, b),
                        (uint64_t)layer << 32, n);
}

void dropout_batch_backward(float* dinp, const float* dout, float p, const StepRng* rng, int layer,
                            int B, size_t n) {
    if (!dropout_batch_active(p, rng)) {
#pragma omp parallel for
        for (size_t i = 0; i < (size_t)B * n; i++) dinp[i] += dout[i];
        return;
    }
    for (int b = 0; b < B; b++)
        dropout_backward(dinp + b * n, dout + b * n, p, rng->seed, dropout_batch_stream(rng, b),
                         (uint64_t)layer << 32, n);
}
