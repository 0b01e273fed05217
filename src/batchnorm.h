// Frozen batch norm: DeepLabv2 freezes every BN (running stats and affine
// parameters fixed), so BN is a fixed per-channel affine y = x*scale + shift.
#ifndef ZSSEG_BATCHNORM_H
#define ZSSEG_BATCHNORM_H

// scale = gamma / sqrt(var + eps), shift = beta - mean * scale (computed in double).
void frozen_bn_fold(float* scale,        // (C)
                    float* shift,        // (C)
                    const float* mean,   // (C) running mean
                    const float* var,    // (C) running variance
                    const float* gamma,  // (C)
                    const float* beta,   // (C)
                    float eps, int C);

// out = inp * scale[c] + shift[c]. Overwrites out; out may == inp.
void frozen_bn_forward(float* out,          // (B, C, HW)
                       const float* inp,    // (B, C, HW)
                       const float* scale,  // (C)
                       const float* shift,  // (C)
                       int B, int C, int HW);

// dinp += dout * scale[c]. ACCUMULATES into dinp; no parameter gradients (frozen).
void frozen_bn_backward(float* dinp,         // (B, C, HW); accumulated
                        const float* dout,   // (B, C, HW)
                        const float* scale,  // (C)
                        int B, int C, int HW);

#endif  // ZSSEG_BATCHNORM_H
