// SGD (momentum) and Adam over ONE contiguous parameter buffer and ONE
// contiguous gradient buffer (llm.c style), partitioned into parameter groups
// with their own lr multiplier and weight decay. PyTorch semantics:
// - weight decay is L2 added to the gradient (g += wd * p), for Adam too (not AdamW);
// - SGD momentum with dampening 0: buf = momentum * buf + g; p -= lr * buf;
// - Adam with bias corrections 1 - beta^t, t = step + 1.
// The per-element formulas are hd_sgd_update / hd_adam_update (hd_math.h),
// shared with the CUDA kernels.
#ifndef ZSSEG_OPTIM_H
#define ZSSEG_OPTIM_H

#include <stddef.h>

enum { OPTIM_SGD = 0, OPTIM_ADAM = 1 };

typedef struct {
    const char* name;      // e.g. "backbone", "cm", "aspp.weight", "aspp.bias" (not copied)
    size_t offset, count;  // float range of the group inside params/grads
    float lr_mult;         // lr = base_lr * lr_mult
    float weight_decay;    // L2 added to the gradient; 0 = no decay
} ParamGroup;

typedef struct { float momentum; } SgdConfig;
typedef struct { float beta1, beta2, eps; } AdamConfig;

typedef struct {
    int kind;            // OPTIM_SGD or OPTIM_ADAM
    SgdConfig sgd;       // used when kind == OPTIM_SGD
    AdamConfig adam;     // used when kind == OPTIM_ADAM
    ParamGroup* groups;  // (n_groups) owned copy, disjoint ranges inside [0, n_params)
    int n_groups;
    float* m;            // (span_n) momentum buffer (SGD) / first moment (Adam)
    float* v;            // (span_n) second moment (Adam), NULL for SGD
    size_t n_params;
    size_t span_lo, span_n;  // state covers params [span_lo, span_lo + span_n): the groups' span
    long step;           // steps taken; Adam's bias correction uses step + 1
} Optimizer;

// Copy the groups (checked: inside [0, n_params), pairwise disjoint) and
// allocate zeroed state. Elements outside every group are never touched, which
// is how frozen parameters stay frozen.
void optimizer_init_sgd(Optimizer* o, SgdConfig cfg, const ParamGroup* groups, int n_groups,
                        size_t n_params);
void optimizer_init_adam(Optimizer* o, AdamConfig cfg, const ParamGroup* groups, int n_groups,
                         size_t n_params);
void optimizer_free(Optimizer* o);

// One step over every group's range with lr = base_lr * lr_mult; then step++.
// Adam's bias corrections 1 - beta^t for the step after `step` steps taken;
// shared by the CPU step and the CUDA kernel launcher.
void adam_bias_corrections(const AdamConfig* c, long step, float* bc1, float* bc2);
void optimizer_step(Optimizer* o,
                    float* params,       // (n_params) updated in place
                    const float* grads,  // (n_params)
                    float base_lr);

#endif  // ZSSEG_OPTIM_H
