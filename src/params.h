// Named parameter tensors inside one contiguous buffer (llm.c style), laid out
// by region so that each optimizer's parameters form one contiguous span.
// Modules declare their tensors at build time (param_declare), the table is
// then finalised (offsets assigned region by region, declaration order within
// a region), and modules reach their tensors by index: params + t[i].offset.
// The gradient buffer has the same layout.
#ifndef ZSSEG_PARAMS_H
#define ZSSEG_PARAMS_H

#include <stddef.h>
#include <stdint.h>

// Regions in buffer order (tests/reference/README.md §2).
typedef enum {
    REGION_BACKBONE = 0,  // backbone conv weights            (E, SGD 1x)
    REGION_ASPP,          // ASPP weights and biases          (E, SGD 10x / 20x)
    REGION_CM,            // contextual module                (E, SGD 5x)
    REGION_DC,            // discriminator/classifier trunk+heads (Adam D)
    REGION_GEN,           // generator                        (Adam G)
    REGION_FROZEN,        // frozen BN statistics and affines (never updated)
    REGION_COUNT
} ParamRegion;

// What a tensor is: decides its init and its optimizer group.
typedef enum {
    PARAM_CONV_WEIGHT = 0,  // (Cout, Cin, kh, kw)
    PARAM_BIAS,             // (Cout)
    PARAM_BN_WEIGHT,        // (C) gamma
    PARAM_BN_BIAS,          // (C) beta
    PARAM_BN_MEAN,          // (C) running mean
    PARAM_BN_VAR,           // (C) running var
} ParamKind;

typedef struct {
    char name[128];  // e.g. "backbone.layer2.block1.reduce.conv.weight"
    int ndim;
    int shape[4];
    size_t numel;
    size_t offset;  // into the buffer; valid after param_table_finalize
    ParamRegion region;
    ParamKind kind;
    int init_scale_quarter;  // closed-form test fill: multiply by 0.25 (bottleneck 'increase')
    int pos;  // position in buffer order = tensor number t of the contract; after finalize
} ParamTensor;

typedef struct {
    ParamTensor* t;
    int n, cap;
    size_t total;                      // floats, after finalize
    size_t region_lo[REGION_COUNT];    // span of each region, after finalize
    size_t region_n[REGION_COUNT];
    int finalized;
} ParamTable;

void param_table_init(ParamTable* pt);
void param_table_free(ParamTable* pt);
// Declare a tensor; returns its index (stable after finalize). Fails on a
// duplicate name or after finalize.
int param_declare(ParamTable* pt, const char* name, ParamRegion region, ParamKind kind, int ndim,
                  const int* shape);
// Assign offsets region by region; returns the total number of floats.
size_t param_table_finalize(ParamTable* pt);
int param_find(const ParamTable* pt, const char* name);  // -1 if absent

// "backbone", "aspp", "cm", "dc", "gen", "frozen".
const char* param_region_name(ParamRegion r);

// Closed-form test weights of tests/reference/README.md §2 (both the C tests
// and the PyTorch fixtures use them): tensor number t = its position in buffer
// order, each element computed in double and rounded to float.
void param_fill_closed_form(const ParamTable* pt,
                            float* params);  // (pt->total)

// Training initialisation: conv weights Kaiming normal over fan-in (std
// sqrt(2 / fan_in)) except ASPP weights N(0, 0.01^2), biases 0, BN weight 1,
// bias 0, running mean 0, running var 1. Draw i of tensor t (buffer position)
// is hd_rng_normal(seed, rng_stream(RNG_INIT, t, 0), i), so a tensor's values
// do not depend on the other tensors or on the thread count.
void param_init_default(const ParamTable* pt,
                        float* params,  // (pt->total)
                        uint64_t seed);

#endif  // ZSSEG_PARAMS_H
