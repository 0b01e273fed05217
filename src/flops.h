// Work of one CaGNet training iteration counted from the layer shapes: the
// "on paper" side of `zsseg bench`. FLOPs are the convolutions' multiply-adds
// (2 FLOPs each) exactly as cagnet_step1 / cagnet_step2 run them:
//   forward              2 * B * C_out * Ho * Wo * C_in * kh * kw
//   backward, data       the same again, only where an input gradient is formed
//   backward, filter     the same again, only where the weights get a gradient
// (e.g. the stem has no data gradient, a D/C call that only feeds dx has no
// filter gradient, G's first layer has no data gradient).
// Not counted as FLOPs: bias adds and bias gradients, activations, dropout,
// resizes, the MSC max fusion, the losses (the MMD content loss, O(sum over
// classes of n_c^2 * D) with n_c the class's pixels, depends on the labels),
// the optimizer updates. The backbone's frozen BN, ReLU, residual adds and max
// pool are memory-bound; they are counted as bytes moved instead (fp32, BN and
// ReLU of a conv as one fused pass):
//   forward   conv BN(+ReLU): read + write its output         8 * n
//             block residual add + ReLU: 2 reads + 1 write    12 * n_out
//             stem max pool: read the stem output, write value and argmax
//                                                             4 * (n_stem + 2 * n_pool)
//   backward  conv BN(+ReLU) gradient: read dy (and y if ReLU), write
//                                                             8 * n  (12 * n with ReLU)
//             block output ReLU gradient                      12 * n_out
//             stem BN+ReLU gradient at the pooled positions   12 * n_pool
//             max pool gradient: read gradient and argmax, write
//                                                             4 * (2 * n_pool + n_stem)
// The heads' element-wise work (at 1/8 resolution) is not counted.
#ifndef ZSSEG_FLOPS_H
#define ZSSEG_FLOPS_H

#include <stdio.h>

#include "cagnet.h"

typedef struct {
    double backbone_fwd, backbone_bwd;  // step1, E: ResNet + ASPP at every MSC scale
    double heads_fwd, heads_bwd;        // step1: CM at every scale, G, every D/C call
    double step2;                       // step2: G and D/C, forward and backward
    double backbone_bytes;              // step1: bytes of the backbone's element-wise passes
} StepFlops;

// Counts of cagnet_step1 (mode NULL: the step1 stage; E's backward only when
// mode->train_e) and cagnet_step2 for a per-rank batch (B, 3, H, W), every MSC
// scale included, step2 at scale 0's feature size. Only m's layers and
// settings are read, so m may have been built for any input size.
void flops_cagnet(StepFlops* f, const CagNet* m, const Step1Mode* mode, int B, int H, int W);

// The four step1 groups summed.
double flops_step1(const StepFlops* f);

// One line per count, "flops <name> <integer> (<GFLOP>)" or "bytes ...",
// fixed names (the bench CLI test parses them).
void flops_print(FILE* fp, const StepFlops* f);

#endif  // ZSSEG_FLOPS_H
