// Element-wise activations and counter-based dropout on flat fp32 arrays of n
// elements (any layout). Formulas come from hd_math.h, shared with CUDA.
// Forwards overwrite out (out may == inp); backwards ACCUMULATE (+=) into dinp.
#ifndef ZSSEG_ACTIVATION_H
#define ZSSEG_ACTIVATION_H

#include <stddef.h>
#include <stdint.h>

#include "rng.h"

void relu_forward(float* out,        // (n)
                  const float* inp,  // (n)
                  size_t n);
void relu_backward(float* dinp,        // (n); accumulated
                   const float* dout,  // (n)
                   const float* inp,   // (n) forward input
                   size_t n);

void leaky_relu_forward(float* out,        // (n)
                        const float* inp,  // (n)
                        float slope, size_t n);
void leaky_relu_backward(float* dinp,        // (n); accumulated
                         const float* dout,  // (n)
                         const float* inp,   // (n) forward input
                         float slope, size_t n);

void sigmoid_forward(float* out,        // (n)
                     const float* inp,  // (n)
                     size_t n);
// Uses the forward OUTPUT (sigmoid' = s(1-s)), so inp need not be kept.
void sigmoid_backward(float* dinp,        // (n); accumulated
                      const float* dout,  // (n)
                      const float* out,   // (n) forward output
                      size_t n);

// Inverted dropout, 0 <= p <= 1: element i is dropped iff
// hd_rng_uniform(seed, stream, offset + i) < p, kept ones are divided by
// (1 - p). No mask is stored: backward recomputes it from the same key, so it
// is identical on any rank/device and after resume, and a tensor processed in
// chunks (offset advanced by each chunk's start) gets the same mask as whole.
// p == 0 is the identity, p == 1 zeroes everything.
void dropout_forward(float* out,        // (n)
                     const float* inp,  // (n)
                     float p, uint64_t seed, uint64_t stream, uint64_t offset, size_t n);
void dropout_backward(float* dinp,        // (n); accumulated
                      const float* dout,  // (n)
                      float p, uint64_t seed, uint64_t stream, uint64_t offset, size_t n);

// Dropout of a batch of B samples of n elements each, keyed per sample as the
// model contract says (tests/reference/README.md §4): element j of sample b
// uses stream rng_stream(RNG_DROPOUT, rng->iter, rng->sample0 + b) and index
// (layer << 32) + j, so a sample's mask is the same whichever batch or rank
// holds it. With rng->training == 0 (or p == 0) it is the identity.
void dropout_batch_forward(float* out,        // (B, n); may == inp
                           const float* inp,  // (B, n)
                           float p, const StepRng* rng, int layer, int B, size_t n);
void dropout_batch_backward(float* dinp,        // (B, n); accumulated
                            const float* dout,  // (B, n)
                            float p, const StepRng* rng, int layer, int B, size_t n);

#endif  // ZSSEG_ACTIVATION_H
