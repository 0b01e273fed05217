// Layout and element-wise glue between layers: multi-scale max fusion,
// channel concat/slice, add, mul, and per-pixel scaling by a map.
// Forwards overwrite out; backwards ACCUMULATE (+=) into every gradient buffer.
#ifndef ZSSEG_TENSOR_OPS_H
#define ZSSEG_TENSOR_OPS_H

#include <stddef.h>
#include <stdint.h>

// Multi-scale fusion: out = element-wise max over k maps (1 <= k <= 256);
// which[i] records the winning map (the first one on ties) so the backward
// routes dout[i] to that map only.
void max_fuse_forward(float* out,                  // (n)
                      uint8_t* which,              // (n)
                      const float* const* inputs,  // k pointers, each (n)
                      int k, size_t n);
// dinputs[which[i]][i] += dout[i]; a NULL dinputs[j] skips map j.
void max_fuse_backward(float* const* dinputs,  // k pointers, each (n) or NULL; accumulated
                       const float* dout,      // (n)
                       const uint8_t* which,   // (n) from max_fuse_forward
                       int k, size_t n);

// Channel concat of k tensors (B, C[i], HW) -> (B, sum C[i], HW) and its
// backward, which splits dout into the pieces (a NULL dinputs[i] skips piece i).
void concat_channels_forward(float* out,                  // (B, sum C[i], HW)
                             const float* const* inputs,  // k pointers, input i (B, C[i], HW)
                             const int* C,                // (k)
                             int k, int B, int HW);
void concat_channels_backward(
    float* const* dinputs,  // k pointers, (B, C[i], HW) or NULL; accumulated
    const float* dout,      // (B, sum C[i], HW)
    const int* C,           // (k)
    int k, int B, int HW);

// Channels [c0, c0+Cs) of (B, C, HW) -> (B, Cs, HW), and its backward.
void slice_channels_forward(float* out,        // (B, Cs, HW)
                            const float* inp,  // (B, C, HW)
                            int B, int C, int HW, int c0, int Cs);
void slice_channels_backward(float* dinp,        // (B, C, HW); accumulated in [c0, c0+Cs)
                             const float* dout,  // (B, Cs, HW)
                             int B, int C, int HW, int c0, int Cs);

// out = a + b. Its backward is dout added into both gradients.
void add_forward(float* out,      // (n)
                 const float* a,  // (n)
                 const float* b,  // (n)
                 size_t n);
// out = a * b; backward da += dout*b, db += dout*a (da or db may be NULL).
void mul_forward(float* out,      // (n)
                 const float* a,  // (n)
                 const float* b,  // (n)
                 size_t n);
void mul_backward(float* da,          // (n) or NULL; accumulated
                  float* db,          // (n) or NULL; accumulated
                  const float* dout,  // (n)
                  const float* a,     // (n)
                  const float* b,     // (n)
                  size_t n);

// Per-pixel scaling by one map broadcast over channels (context selector):
// out[b,c,p] = x[b,c,p] * s[b,p]. Backward: dx += dout*s, ds += sum_c dout*x
// (dx or ds may be NULL).
void scale_by_map_forward(float* out,      // (B, C, HW)
                          const float* x,  // (B, C, HW)
                          const float* s,  // (B, 1, HW)
                          int B, int C, int HW);
void scale_by_map_backward(float* dx,          // (B, C, HW) or NULL; accumulated
                           float* ds,          // (B, 1, HW) or NULL; accumulated
                           const float* dout,  // (B, C, HW)
                           const float* x,     // (B, C, HW)
                           const float* s,     // (B, 1, HW)
                           int B, int C, int HW);

#endif  // ZSSEG_TENSOR_OPS_H
