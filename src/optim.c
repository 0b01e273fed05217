#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "hd_math.h"

// Overlapping groups would update an element twice per step, so refuse them.
static void optimizer_init_common(Optimizer* o, int kind, const ParamGroup* groups, int n_groups,
                                  size_t n_params) {
    for (int g = 0; g < n_groups; g++) {
        const ParamGroup* a = &groups[g];
        if (a->offset > n_params || a->count > n_params - a->offset)
            ZS_FAIL("parameter groups must lie inside the parameter buffer",
                    "optimizer: group '%s' [%zu, +%zu) exceeds %zu parameters", a->name, a->offset,
                    a->count, n_params);
        for (int h = 0; h < g; h++) {
            const ParamGroup* b = &groups[h];
            if (a->offset < b->offset + b->count && b->offset < a->offset + a->count)
                ZS_FAIL("give every parameter to at most one group",
                        "optimizer: groups '%s' and '%s' overlap", b->name, a->name);
        }
    }
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->n_groups = n_groups;
    o->n_params = n_params;
    if (n_groups > 0) {
        o->groups = mallocCheck((size_t)n_groups * sizeof *o->groups);
        memcpy(o->groups, groups, (size_t)n_groups * sizeof *o->groups);
    }
    // state covers only the span of the groups, so three optimizers over one
    // model buffer do not each pay for the whole model
    size_t lo = n_params, hi = 0;
    for (int g = 0; g < n_groups; g++) {
        if (groups[g].offset < lo) lo = groups[g].offset;
        if (groups[g].offset + groups[g].count > hi) hi = groups[g].offset + groups[g].count;
    }
    o->span_lo = hi > lo ? lo : 0;
    o->span_n = hi > lo ? hi - lo : 0;
    o->m = callocCheck(o->span_n ? o->span_n : 1, sizeof(float));
}

void optimizer_init_sgd(Optimizer* o, SgdConfig cfg, const ParamGroup* groups, int n_groups,
                        size_t n_params) {
    optimizer_init_common(o, OPTIM_SGD, groups, n_groups, n_params);
    o->sgd = cfg;
}

void optimizer_init_adam(Optimizer* o, AdamConfig cfg, const ParamGroup* groups, int n_groups,
                         size_t n_params) {
    optimizer_init_common(o, OPTIM_ADAM, groups, n_groups, n_params);
    o->adam = cfg;
    o->v = callocCheck(o->span_n ? o->span_n : 1, sizeof(float));
}

void optimizer_free(Optimizer* o) {
    free(o->groups);
    free(o->m);
    free(o->v);
    memset(o, 0, sizeof *o);
}

void adam_bias_corrections(const AdamConfig* c, long step, float* bc1, float* bc2) {
    // in double, as PyTorch computes them; t = step + 1 is the step being taken
    double t = (double)(step + 1);
    *bc1 = (float)(1.0 - pow((double)c->beta1, t));
    *bc2 = (float)(1.0 - pow((double)c->beta2, t));
}

void optimizer_step(Optimizer* o, float* params, const float* grads, float base_lr) {
    float bc1, bc2;  // unused by SGD
    adam_bias_corrections(&o->adam, o->step, &bc1, &bc2);
    for (int g = 0; g < o->n_groups; g++) {
        const ParamGroup* pg = &o->groups[g];
        float lr = base_lr * pg->lr_mult, wd = pg->weight_decay;
        float* p = params + pg->offset;
        const float* gr = grads + pg->offset;
        float* m = o->m + (pg->offset - o->span_lo);
        if (o->kind == OPTIM_SGD) {
            float mom = o->sgd.momentum;
#pragma omp parallel for schedule(static)
            for (size_t i = 0; i < pg->count; i++) hd_sgd_update(&p[i], &m[i], gr[i], lr, mom, wd);
        } else {
            float* v = o->v + (pg->offset - o->span_lo);
            AdamConfig c = o->adam;
#pragma omp parallel for schedule(static)
            for (size_t i = 0; i < pg->count; i++)
                hd_adam_update(&p[i], &m[i], &v[i], gr[i], lr, c.beta1, c.beta2, c.eps, wd, bc1,
                               bc2);
        }
    }
    o->step++;
}
