// Parameter table: region-then-declaration layout, contiguous offsets, lookup,
// refused declarations, the contract's closed-form fill (values computed
// independently in Python, and the formula in double at many elements), and
// the statistics and determinism of the default initialisation.
#include <omp.h>
#include <string.h>

#include "params.h"
#include "testing.h"

// Declared out of buffer order on purpose; buffer positions in the comments.
static void build(ParamTable* pt) {
    int bn[1] = {8}, gen[4] = {6, 4, 1, 1}, conv[4] = {4, 3, 3, 3}, aspp[4] = {2, 4, 3, 3},
        c7[1] = {7}, inc[4] = {5, 4, 1, 1}, dc[4] = {3, 5, 1, 1}, c2[1] = {2};
    param_table_init(pt);
    param_declare(pt, "backbone.layer1.bn.weight", REGION_FROZEN, PARAM_BN_WEIGHT, 1, bn);  // 7
    param_declare(pt, "gen.fc1.weight", REGION_GEN, PARAM_CONV_WEIGHT, 4, gen);             // 6
    param_declare(pt, "backbone.layer1.conv.weight", REGION_BACKBONE, PARAM_CONV_WEIGHT, 4,
                  conv);                                                           // 0
    param_declare(pt, "aspp.c0.weight", REGION_ASPP, PARAM_CONV_WEIGHT, 4, aspp);  // 2
    param_declare(pt, "cm.conv1.bias", REGION_CM, PARAM_BIAS, 1, c7);              // 4
    int k = param_declare(pt, "backbone.layer2.increase.conv.weight", REGION_BACKBONE,
                          PARAM_CONV_WEIGHT, 4, inc);  // 1
    pt->t[k].init_scale_quarter = 1;
    param_declare(pt, "dc.trunk.weight", REGION_DC, PARAM_CONV_WEIGHT, 4, dc);                  // 5
    param_declare(pt, "aspp.c0.bias", REGION_ASPP, PARAM_BIAS, 1, c2);                          // 3
    param_declare(pt, "backbone.layer1.bn.bias", REGION_FROZEN, PARAM_BN_BIAS, 1, bn);          // 8
    param_declare(pt, "backbone.layer1.bn.running_mean", REGION_FROZEN, PARAM_BN_MEAN, 1, bn);  // 9
    param_declare(pt, "backbone.layer1.bn.running_var", REGION_FROZEN, PARAM_BN_VAR, 1, bn);  // 10
}

static const float* at(const ParamTable* pt, const float* p, const char* name) {
    return p + pt->t[param_find(pt, name)].offset;
}

static void child_duplicate(void) {
    ParamTable pt;
    int s[1] = {3};
    param_table_init(&pt);
    param_declare(&pt, "cm.mu.bias", REGION_CM, PARAM_BIAS, 1, s);
    param_declare(&pt, "cm.mu.bias", REGION_CM, PARAM_BIAS, 1, s);
}
static void child_after_finalize(void) {
    ParamTable pt;
    int s[1] = {3};
    param_table_init(&pt);
    param_declare(&pt, "cm.mu.bias", REGION_CM, PARAM_BIAS, 1, s);
    param_table_finalize(&pt);
    param_declare(&pt, "cm.mu.weight", REGION_CM, PARAM_BIAS, 1, s);
}
static void child_zero_dim(void) {
    ParamTable pt;
    int s[2] = {3, 0};
    param_table_init(&pt);
    param_declare(&pt, "cm.mu.weight", REGION_CM, PARAM_CONV_WEIGHT, 2, s);
}

static void test_layout(void) {
    ParamTable pt;
    build(&pt);
    size_t total = param_table_finalize(&pt);
    static const char* order[] = {"backbone.layer1.conv.weight",
                                  "backbone.layer2.increase.conv.weight",
                                  "aspp.c0.weight",
                                  "aspp.c0.bias",
                                  "cm.conv1.bias",
                                  "dc.trunk.weight",
                                  "gen.fc1.weight",
                                  "backbone.layer1.bn.weight",
                                  "backbone.layer1.bn.bias",
                                  "backbone.layer1.bn.running_mean",
                                  "backbone.layer1.bn.running_var"};
    static const size_t numel[] = {108, 20, 72, 2, 7, 15, 24, 8, 8, 8, 8};
    size_t off = 0;
    for (int p = 0; p < 11; p++) {
        int k = param_find(&pt, order[p]);
        CHECK(k >= 0 && pt.t[k].pos == p && pt.t[k].offset == off && pt.t[k].numel == numel[p],
              "%s: pos %d offset %zu numel %zu (want %d, %zu, %zu)", order[p],
              k >= 0 ? pt.t[k].pos : -1, k >= 0 ? pt.t[k].offset : 0, k >= 0 ? pt.t[k].numel : 0, p,
              off, numel[p]);
        off += numel[p];
    }
    CHECK(total == 280 && pt.total == 280, "total %zu", total);
    static const size_t lo[REGION_COUNT] = {0, 128, 202, 209, 224, 248};
    static const size_t n[REGION_COUNT] = {128, 74, 7, 15, 24, 32};
    for (int r = 0; r < REGION_COUNT; r++)
        CHECK(pt.region_lo[r] == lo[r] && pt.region_n[r] == n[r], "region %s: lo %zu n %zu",
              param_region_name((ParamRegion)r), pt.region_lo[r], pt.region_n[r]);
    CHECK(strcmp(param_region_name(REGION_ASPP), "aspp") == 0 &&
              strcmp(param_region_name(REGION_FROZEN), "frozen") == 0,
          "region names");
    CHECK(param_find(&pt, "backbone.layer1") == -1 && param_find(&pt, "") == -1, "absent names");
    CHECK(param_table_finalize(&pt) == 280, "finalize is idempotent");
    CHECK(t_exits_with_error(child_duplicate), "duplicate name refused");
    CHECK(t_exits_with_error(child_after_finalize), "declare after finalize refused");
    CHECK(t_exits_with_error(child_zero_dim), "zero dimension refused");
    param_table_free(&pt);
}

static double formula(const ParamTensor* t, int i) {
    double tt = t->pos;
    switch (t->kind) {
        case PARAM_CONV_WEIGHT: {
            double fan = (double)t->numel / t->shape[0];
            double v = sqrt(1.0 / fan) * sqrt(2.0) * sin(0.37 * i + 1.3 * tt + 0.5);
            return t->init_scale_quarter ? 0.25 * v : v;
        }
        case PARAM_BIAS: return 0.05 * sin(0.91 * i + 1.7 * tt);
        case PARAM_BN_WEIGHT: return 1.0 + 0.1 * sin(0.53 * i + tt);
        case PARAM_BN_BIAS: return 0.1 * sin(0.29 * i + 2.0 * tt);
        case PARAM_BN_MEAN: return 0.1 * sin(0.71 * i + 3.0 * tt);
        case PARAM_BN_VAR: return 1.0 + 0.25 * (1.0 + sin(0.43 * i + tt));
    }
    return NAN;
}

static void test_closed_form(void) {
    ParamTable pt;
    build(&pt);
    param_table_finalize(&pt);
    float* p = (float*)malloc(pt.total * sizeof(float));
    param_fill_closed_form(&pt, p);
    // Values from Python (math.sin in double, numpy.float32): tensor number t is
    // the buffer position, fan_in = Cin*kh*kw, increase x 0.25.
    CHECK(at(&pt, p, "backbone.layer1.conv.weight")[0] == 0.13048310577869415f, "t0 i0 %.9g",
          at(&pt, p, "backbone.layer1.conv.weight")[0]);
    CHECK(at(&pt, p, "backbone.layer1.conv.weight")[107] == 0.18565882742404938f, "t0 i107");
    CHECK(at(&pt, p, "backbone.layer2.increase.conv.weight")[11] == -0.07098089903593063f,
          "t1 increase i11 %.9g", at(&pt, p, "backbone.layer2.increase.conv.weight")[11]);
    CHECK(at(&pt, p, "gen.fc1.weight")[23] == -0.630830705165863f, "t6 i23 %.9g",
          at(&pt, p, "gen.fc1.weight")[23]);
    CHECK(at(&pt, p, "cm.conv1.bias")[6] == -0.015080012381076813f, "t4 bias i6");
    CHECK(at(&pt, p, "backbone.layer1.bn.weight")[2] == 1.0978853702545166f, "t7 bn weight i2");
    CHECK(at(&pt, p, "backbone.layer1.bn.bias")[3] == -0.09176145493984222f, "t8 bn bias i3");
    CHECK(at(&pt, p, "backbone.layer1.bn.running_mean")[1] == 0.053485311567783356f, "t9 mean i1");
    CHECK(at(&pt, p, "backbone.layer1.bn.running_var")[5] == 1.1488890647888184f, "t10 var i5");
    // Every element of every tensor against the formula in double.
    int bad = 0;
    for (int k = 0; k < pt.n; k++)
        for (size_t i = 0; i < pt.t[k].numel; i++)
            bad += p[pt.t[k].offset + i] != (float)formula(&pt.t[k], (int)i);
    CHECK(bad == 0, "%d elements differ from the closed form", bad);
    free(p);
    param_table_free(&pt);
}

static void test_default_init(void) {
    ParamTable pt;
    param_table_init(&pt);
    int big[4] = {256, 128, 3, 3}, aspp[4] = {64, 256, 3, 3}, b[1] = {64}, c[1] = {32};
    param_declare(&pt, "backbone.big.conv.weight", REGION_BACKBONE, PARAM_CONV_WEIGHT, 4, big);
    param_declare(&pt, "aspp.c0.weight", REGION_ASPP, PARAM_CONV_WEIGHT, 4, aspp);
    param_declare(&pt, "aspp.c0.bias", REGION_ASPP, PARAM_BIAS, 1, b);
    param_declare(&pt, "cm.fuse.bias", REGION_CM, PARAM_BIAS, 1, b);
    param_declare(&pt, "backbone.big.bn.weight", REGION_FROZEN, PARAM_BN_WEIGHT, 1, c);
    param_declare(&pt, "backbone.big.bn.bias", REGION_FROZEN, PARAM_BN_BIAS, 1, c);
    param_declare(&pt, "backbone.big.bn.running_mean", REGION_FROZEN, PARAM_BN_MEAN, 1, c);
    param_declare(&pt, "backbone.big.bn.running_var", REGION_FROZEN, PARAM_BN_VAR, 1, c);
    param_table_finalize(&pt);
    float* p = (float*)malloc(pt.total * sizeof(float));
    for (size_t i = 0; i < pt.total; i++) p[i] = NAN;  // every element must be written
    param_init_default(&pt, p, 1234);

    // Sample mean and std: with n ~ 3e5 (1.5e5) draws the std estimate is within
    // ~0.2% (0.3%) at one sigma, so 2% is a wide but meaningful bound.
    static const char* w[2] = {"backbone.big.conv.weight", "aspp.c0.weight"};
    const double want_std[2] = {sqrt(2.0 / 1152.0), 0.01};
    for (int j = 0; j < 2; j++) {
        const ParamTensor* t = &pt.t[param_find(&pt, w[j])];
        double s = 0.0, s2 = 0.0;
        for (size_t i = 0; i < t->numel; i++) {
            double v = p[t->offset + i];
            s += v;
            s2 += v * v;
        }
        double mean = s / t->numel, std = sqrt(s2 / t->numel - mean * mean);
        CHECK_CLOSE(std, want_std[j], 0.0, 0.02, w[j]);
        CHECK(fabs(mean) < 4.0 * want_std[j] / sqrt((double)t->numel), "%s mean %g", w[j], mean);
    }
    static const char* consts[] = {"aspp.c0.bias",
                                   "cm.fuse.bias",
                                   "backbone.big.bn.weight",
                                   "backbone.big.bn.bias",
                                   "backbone.big.bn.running_mean",
                                   "backbone.big.bn.running_var"};
    static const float cval[] = {0.0f, 0.0f, 1.0f, 0.0f, 0.0f, 1.0f};
    for (int j = 0; j < 6; j++) {
        const ParamTensor* t = &pt.t[param_find(&pt, consts[j])];
        int bad = 0;
        for (size_t i = 0; i < t->numel; i++) bad += p[t->offset + i] != cval[j];
        CHECK(bad == 0, "%s: %d elements are not %g", consts[j], bad, cval[j]);
    }
    // The draws are hd_rng_normal on the tensor's own stream (RNG_INIT = 1, a = position).
    const ParamTensor* t = &pt.t[param_find(&pt, "aspp.c0.weight")];
    uint64_t stream = (1ull << 56) | ((uint64_t)t->pos << 32);
    CHECK(p[t->offset + 17] == 0.01f * hd_rng_normal(1234, stream, 17), "aspp draw 17 keyed");
    // Same seed, another thread count: identical; another seed: different.
    float* q = (float*)malloc(pt.total * sizeof(float));
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    param_init_default(&pt, q, 1234);
    omp_set_num_threads(threads);
    CHECK(memcmp(p, q, pt.total * sizeof(float)) == 0, "init depends on the thread count");
    param_init_default(&pt, q, 1235);
    CHECK(q[0] != p[0] && q[pt.region_lo[REGION_ASPP]] != p[pt.region_lo[REGION_ASPP]],
          "another seed gives other draws");
    free(q);
    free(p);
    param_table_free(&pt);
}

int main(void) {
    test_layout();
    test_closed_form();
    test_default_init();
    return t_report("test_params");
}
