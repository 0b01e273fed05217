// Layout and element-wise glue ops; see tensor_ops.h.
#include "tensor_ops.h"

#include <string.h>

#include "common.h"
#include "hd_math.h"

void max_fuse_forward(float* out, uint8_t* which, const float* const* inputs, int k, size_t n) {
    if (k < 1 || k > 256) ZS_FAIL("fuse between 1 and 256 maps", "max_fuse_forward: k = %d", k);
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) which[i] = (uint8_t)hd_max_fuse(inputs, k, i, &out[i]);
}

void max_fuse_backward(float* const* dinputs, const float* dout, const uint8_t* which, int k,
                       size_t n) {
    (void)k;  // which[] already names a map in [0, k)
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) {
        float* d = dinputs[which[i]];
        if (d) d[i] += dout[i];
    }
}

// Channel offset of piece i; i == k gives the total channel count.
static int concat_offset(const int* C, int i) {
    int off = 0;
    for (int j = 0; j < i; j++) off += C[j];
    return off;
}

void concat_channels_forward(float* out, const float* const* inputs, const int* C, int k, int B,
                             int HW) {
    const int Ct = concat_offset(C, k);
#pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++)
        for (int i = 0; i < k; i++) {
            size_t len = (size_t)C[i] * HW;
            memcpy(out + ((size_t)b * Ct + concat_offset(C, i)) * HW, inputs[i] + b * len,
                   len * sizeof(float));
        }
}

void concat_channels_backward(float* const* dinputs, const float* dout, const int* C, int k, int B,
                              int HW) {
    const int Ct = concat_offset(C, k);
#pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++)
        for (int i = 0; i < k; i++) {
            if (!dinputs[i]) continue;
            size_t len = (size_t)C[i] * HW;
            float* d = dinputs[i] + b * len;
            const float* g = dout + ((size_t)b * Ct + concat_offset(C, i)) * HW;
            for (size_t j = 0; j < len; j++) d[j] += g[j];
        }
}

void slice_channels_forward(float* out, const float* inp, int B, int C, int HW, int c0, int Cs) {
    const size_t len = (size_t)Cs * HW;
#pragma omp parallel for
    for (int b = 0; b < B; b++)
        memcpy(out + b * len, inp + ((size_t)b * C + c0) * HW, len * sizeof(float));
}

void slice_channels_backward(float* dinp, const float* dout, int B, int C, int HW, int c0, int Cs) {
    const size_t len = (size_t)Cs * HW;
#pragma omp parallel for
    for (int b = 0; b < B; b++) {
        float* d = dinp + ((size_t)b * C + c0) * HW;
        const float* g = dout + b * len;
        for (size_t j = 0; j < len; j++) d[j] += g[j];
    }
}

void add_forward(float* out, const float* a, const float* b, size_t n) {
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void mul_forward(float* out, const float* a, const float* b, size_t n) {
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) out[i] = a[i] * b[i];
}

void mul_backward(float* da, float* db, const float* dout, const float* a, const float* b,
                  size_t n) {
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) {
        if (da) da[i] += dout[i] * b[i];
        if (db) db[i] += dout[i] * a[i];
    }
}

void scale_by_map_forward(float* out, const float* x, const float* s, int B, int C, int HW) {
#pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            size_t o = ((size_t)b * C + c) * HW;
            const float* sb = s + (size_t)b * HW;
            for (int p = 0; p < HW; p++) out[o + p] = x[o + p] * sb[p];
        }
}

void scale_by_map_backward(float* dx, float* ds, const float* dout, const float* x, const float* s,
                           int B, int C, int HW) {
    if (dx) {
#pragma omp parallel for collapse(2)
        for (int b = 0; b < B; b++)
            for (int c = 0; c < C; c++) {
                size_t o = ((size_t)b * C + c) * HW;
                const float* sb = s + (size_t)b * HW;
                for (int p = 0; p < HW; p++) dx[o + p] += dout[o + p] * sb[p];
            }
    }
    if (ds) {
        // one thread per pixel sums over channels: no shared writes
#pragma omp parallel for collapse(2)
        for (int b = 0; b < B; b++)
            for (int p = 0; p < HW; p++) {
                const size_t o = (size_t)b * C * HW + p;
                float acc = 0.0f;
                for (int c = 0; c < C; c++) acc += dout[o + (size_t)c * HW] * x[o + (size_t)c * HW];
                ds[(size_t)b * HW + p] += acc;
            }
    }
}
