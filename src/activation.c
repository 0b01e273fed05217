// Element-wise activations and dropout; see activation.h.
#include "activation.h"

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
