// Parameter table: declaration, region-ordered layout, closed-form test fill
// and default initialisation. See params.h.
#include "params.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "hd_math.h"
#include "rng.h"

#define BUG_HINT "this is a bug in the model code that declares its parameters"

void param_table_init(ParamTable* pt) { memset(pt, 0, sizeof *pt); }

void param_table_free(ParamTable* pt) {
    free(pt->t);
    memset(pt, 0, sizeof *pt);
}

int param_declare(ParamTable* pt, const char* name, ParamRegion region, ParamKind kind, int ndim,
                  const int* shape) {
    if (pt->finalized) ZS_FAIL(BUG_HINT, "param_declare('%s') after param_table_finalize", name);
    if (strlen(name) >= sizeof pt->t[0].name)
        ZS_FAIL(BUG_HINT, "parameter name too long: '%s'", name);
    if ((int)region < 0 || region >= REGION_COUNT || ndim < 1 || ndim > 4)
        ZS_FAIL(BUG_HINT, "parameter '%s': bad region %d or ndim %d", name, (int)region, ndim);
    if (param_find(pt, name) >= 0) ZS_FAIL(BUG_HINT, "parameter '%s' declared twice", name);
    if (pt->n == pt->cap) {
        pt->cap = pt->cap ? 2 * pt->cap : 64;
        ParamTensor* t = (ParamTensor*)realloc(pt->t, (size_t)pt->cap * sizeof *t);
        if (!t) ZS_FAIL("out of memory", "cannot grow the parameter table to %d tensors", pt->cap);
        pt->t = t;
    }
    ParamTensor* t = &pt->t[pt->n];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 1)
            ZS_FAIL(BUG_HINT, "parameter '%s': dimension %d is %d", name, d, shape[d]);
        t->shape[d] = shape[d];
        t->numel *= (size_t)shape[d];
    }
    t->region = region;
    t->kind = kind;
    return pt->n++;
}

size_t param_table_finalize(ParamTable* pt) {
    if (pt->finalized) return pt->total;
    size_t off = 0;
    int pos = 0;
    for (int r = 0; r < REGION_COUNT; r++) {
        pt->region_lo[r] = off;
        for (int i = 0; i < pt->n; i++) {
            if (pt->t[i].region != (ParamRegion)r) continue;
            pt->t[i].offset = off;
            pt->t[i].pos = pos++;
            off += pt->t[i].numel;
        }
        pt->region_n[r] = off - pt->region_lo[r];
    }
    pt->total = off;
    pt->finalized = 1;
    return off;
}

int param_find(const ParamTable* pt, const char* name) {
    for (int i = 0; i < pt->n; i++)
        if (strcmp(pt->t[i].name, name) == 0) return i;
    return -1;
}

const char* param_region_name(ParamRegion r) {
    static const char* names[REGION_COUNT] = {"backbone", "aspp", "cm", "dc", "gen", "frozen"};
    return (int)r >= 0 && r < REGION_COUNT ? names[r] : "unknown";
}

static void param_require_final(const ParamTable* pt, const char* who) {
    if (!pt->finalized) ZS_FAIL(BUG_HINT, "%s before param_table_finalize", who);
}

// Fan-in of a weight (Cout, Cin, kh, kw): every dimension but the first.
static double param_fan_in(const ParamTensor* t) {
    return (double)(t->numel / (size_t)t->shape[0]);
}

// Element i of tensor number t under the contract's closed form, in double.
static double closed_form_value(const ParamTensor* p, double t, double i) {
    switch (p->kind) {
        case PARAM_CONV_WEIGHT: {
            double v = sqrt(1.0 / param_fan_in(p)) * sqrt(2.0) * sin(0.37 * i + 1.3 * t + 0.5);
            return p->init_scale_quarter ? 0.25 * v : v;
        }
        case PARAM_BIAS: return 0.05 * sin(0.91 * i + 1.7 * t);
        case PARAM_BN_WEIGHT: return 1.0 + 0.1 * sin(0.53 * i + t);
        case PARAM_BN_BIAS: return 0.1 * sin(0.29 * i + 2.0 * t);
        case PARAM_BN_MEAN: return 0.1 * sin(0.71 * i + 3.0 * t);
        case PARAM_BN_VAR: return 1.0 + 0.25 * (1.0 + sin(0.43 * i + t));
    }
    ZS_FAIL(BUG_HINT, "parameter '%s' has unknown kind %d", p->name, (int)p->kind);
}

void param_fill_closed_form(const ParamTable* pt, float* params) {
    param_require_final(pt, "param_fill_closed_form");
    for (int k = 0; k < pt->n; k++) {
        const ParamTensor* p = &pt->t[k];
        float* x = params + p->offset;
        long n = (long)p->numel;
#pragma omp parallel for
        for (long i = 0; i < n; i++) x[i] = (float)closed_form_value(p, (double)p->pos, (double)i);
    }
}

void param_init_default(const ParamTable* pt, float* params, uint64_t seed) {
    param_require_final(pt, "param_init_default");
    for (int k = 0; k < pt->n; k++) {
        const ParamTensor* p = &pt->t[k];
        float* x = params + p->offset;
        long n = (long)p->numel;
        if (p->kind == PARAM_CONV_WEIGHT) {
            // DeepLab initialises its ASPP classifier convs with N(0, 0.01).
            float std = p->region == REGION_ASPP ? 0.01f : (float)sqrt(2.0 / param_fan_in(p));
            uint64_t stream = rng_stream(RNG_INIT, (uint64_t)p->pos, 0);
#pragma omp parallel for
            for (long i = 0; i < n; i++) x[i] = std * hd_rng_normal(seed, stream, (uint64_t)i);
        } else {
            float v = p->kind == PARAM_BN_WEIGHT || p->kind == PARAM_BN_VAR ? 1.0f : 0.0f;
            for (long i = 0; i < n; i++) x[i] = v;
        }
    }
}
