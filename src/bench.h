// `zsseg bench`: one training iteration of a config, on paper and measured.
// On paper (flops.h): counted FLOPs per GPU, the expected step time at a GPU's
// peak (default: H100 SXM, dense TF32), the gradient bytes a step1 sums across
// ranks, the allreduce time at an NCCL bus bandwidth, and the scaling
// efficiency this gives on N GPUs. Measured: step1 and step2 iterations on
// random inputs on this machine's CPU, the achieved rate of the counted
// FLOPs, and under mpirun the gradient allreduce.
#ifndef ZSSEG_BENCH_H
#define ZSSEG_BENCH_H

#include "cli.h"
#include "config.h"

// `zsseg bench -c CFG [--iters N] [--gpus N] [--peak-tflops X] [--efficiency F]
// [--hbm-gbs Y] [--busbw-gbs Z]`; --iters 0: on paper only.
int cmd_bench(const CliArgs* args, const Config* cfg);

#endif  // ZSSEG_BENCH_H
