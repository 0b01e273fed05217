// Self-training rules on hand-computed pixels: K = 4 classes, 2 and 3
// unseen. Ties between an unseen and a seen class and between two unseen
// classes, top_p 1/2/3, ground-truth pixels untouched, sign weights, zs3
// candidates; exact zs3 thresholds on hand lists (ties, n_c = 0, a percent
// whose naive percent/100 * n rounds up, values sharing their top 16 bits);
// apply(); the config keys. Multi-rank thresholds: tests/mpi_selftrain.c.
#include <math.h>
#include <string.h>

#include "common.h"
#include "config.h"
#include "selftrain.h"
#include "testing.h"

#define NK 4
#define HW 8
static const uint8_t UNSEEN[NK] = {0, 0, 1, 1};
static const uint8_t NO_UNSEEN[NK] = {0, 0, 0, 0};
static const uint8_t GT[HW] = {255, 255, 3, 255, 255, 255, 0, 255};

// Logits per pixel (transposed to (NK, HW) below) and their softmax.
static float PIX[HW][NK];
static void init_pixels(void) {
    const float l2 = logf(2.0f), l3 = logf(3.0f), l4 = logf(4.0f);
    const float p[HW][NK] = {
        {0, 0, 0, 0},               // p0: 1/4 each; unseen 2 ties seen 0, 1 (rank 3)
        {0, 0, l2, l2},             // p1: 1/6 1/6 1/3 1/3; unseen 2 ties unseen 3: 2 wins
        {5, 0, 0, 0},               // p2: ground truth 3
        {l3, 0, l2, 0},             // p3: 3/7 1/7 2/7 1/7; candidate 2 is rank 2
        {l2, l2, 0, l2},            // p4: 2/7 2/7 1/7 2/7; candidate 3 ties 0, 1 (rank 3)
        {0, 0, 0, l4},              // p5: 1/7 1/7 1/7 4/7; candidate 3 is rank 1
        {0, 0, 9, 0},               // p6: ground truth 0
        {1000, 999, 1000, 998},     // p7: max subtracted; 2 ties seen 0, conf 1/(2+e^-1+e^-2)
    };
    memcpy(PIX, p, sizeof PIX);
}
static const double C7 = 0.39948630465030277;  // 1 / (2 + e^-1 + e^-2)

static void run_rule(StMode mode, int top_p, const uint8_t* unseen, uint8_t* label, float* conf,
                     float* weight) {
    float logits[NK * HW];
    for (int i = 0; i < HW; i++)
        for (int k = 0; k < NK; k++) logits[k * HW + i] = PIX[i][k];
    StRule r = {.mode = mode, .top_p = top_p, .percent = 25, .temperature = 2.0, .K = NK,
                .unseen = unseen};
    st_label_image(&r, logits, GT, HW, label, conf, weight);
}

// Expected labels (255 = none) and confidences; weight 1 where labelled.
static void check_hard(const char* what, const uint8_t* label, const float* conf,
                       const float* weight, const int* want_label, const double* want_conf) {
    for (int i = 0; i < HW; i++) {
        CHECK(label[i] == want_label[i], "%s pixel %d: label %d want %d", what, i, label[i],
              want_label[i]);
        CHECK_CLOSE(conf[i], want_conf[i], 1e-7, 1e-6, what);
        CHECK(weight[i] == (want_label[i] == 255 ? 0.0f : 1.0f), "%s pixel %d: weight %g", what, i,
              weight[i]);
    }
}

static void test_cagnet(void) {
    uint8_t label[HW];
    float conf[HW], weight[HW];
    const int N = 255;
    run_rule(ST_MODE_CAGNET, 1, UNSEEN, label, conf, weight);
    check_hard("cagnet top1", label, conf, weight, (int[HW]){N, 2, N, N, N, 3, N, N},
               (double[HW]){0, 1.0 / 3, 0, 0, 0, 4.0 / 7, 0, 0});
    run_rule(ST_MODE_CAGNET, 2, UNSEEN, label, conf, weight);
    check_hard("cagnet top2", label, conf, weight, (int[HW]){N, 2, N, 2, N, 3, N, 2},
               (double[HW]){0, 1.0 / 3, 0, 2.0 / 7, 0, 4.0 / 7, 0, C7});
    run_rule(ST_MODE_CAGNET, 3, UNSEEN, label, conf, weight);
    check_hard("cagnet top3", label, conf, weight, (int[HW]){2, 2, N, 2, 3, 3, N, 2},
               (double[HW]){0.25, 1.0 / 3, 0, 2.0 / 7, 2.0 / 7, 4.0 / 7, 0, C7});
}

// zs3 keeps pixels whose argmax (ties: lowest index) is unseen: p1 (2 and 3
// tie, 2 wins) and p5; p0, p4, p7 tie with seen class 0, which wins.
static void test_zs3_candidates(void) {
    uint8_t label[HW];
    float conf[HW], weight[HW];
    const int N = 255;
    run_rule(ST_MODE_ZS3, 1, UNSEEN, label, conf, weight);
    check_hard("zs3", label, conf, weight, (int[HW]){N, 2, N, N, N, 3, N, N},
               (double[HW]){0, 1.0 / 3, 0, 0, 0, 4.0 / 7, 0, 0});
}

// Every ignored pixel gets its candidate, w = exp((conf - 4/7) / 2):
// p0 exp((1/4-4/7)/2) = 0.85153533, p1 0.88776553, p3 = p4 0.86687790,
// p5 exactly 1, p7 0.91762072.
static void test_sign(void) {
    uint8_t label[HW];
    float conf[HW], weight[HW];
    run_rule(ST_MODE_SIGN, 1, UNSEEN, label, conf, weight);
    const int want_label[HW] = {2, 2, 255, 2, 3, 3, 255, 2};
    const double want_w[HW] = {0.8515353321631064, 0.8877655252065778, 0, 0.8668778997501816,
                               0.8668778997501816, 1.0, 0, 0.9176207194380669};
    const double want_c[HW] = {0.25, 1.0 / 3, 0, 2.0 / 7, 2.0 / 7, 4.0 / 7, 0, C7};
    for (int i = 0; i < HW; i++) {
        CHECK(label[i] == want_label[i], "sign pixel %d: label %d want %d", i, label[i],
              want_label[i]);
        CHECK_CLOSE(conf[i], want_c[i], 1e-7, 1e-6, "sign conf");
        CHECK_CLOSE(weight[i], want_w[i], 1e-7, 1e-6, "sign weight");
        if (want_c[i] > 0)
            CHECK_CLOSE(weight[i], exp((conf[i] - conf[5]) / 2.0), 0, 1e-6, "sign w formula");
    }
    CHECK(weight[5] == 1.0f, "sign: the most confident pixel's weight is %.9g, not exactly 1",
          weight[5]);
}

// No unseen class: nothing to label in any mode.
static void test_no_unseen(void) {
    uint8_t label[HW];
    float conf[HW], weight[HW];
    for (int m = 0; m < 3; m++) {
        run_rule((StMode)m, 4, NO_UNSEEN, label, conf, weight);
        for (int i = 0; i < HW; i++)
            CHECK(label[i] == 255 && conf[i] == 0 && weight[i] == 0, "no unseen, mode %d pixel %d",
                  m, i);
    }
}

static float thr_of(const uint8_t* label, const float* conf, size_t n, double percent, int c) {
    StRule r = {.mode = ST_MODE_ZS3, .percent = percent, .K = NK, .unseen = UNSEEN};
    float thr[NK];
    st_zs3_thresholds(&r, NULL, label, conf, n, thr);
    for (int k = 0; k < NK; k++)
        if (k != c)
            CHECK(isinf(thr[k]) && thr[k] > 0, "percent %g: class %d threshold %g, not +inf",
                  percent, k, thr[k]);
    return thr[c];
}

static float from_bits(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

static void test_thresholds(void) {
    // class 2: {0.9, 0.8, 0.8, 0.5}; seen-labelled and unlabelled pixels don't count
    const uint8_t label[8] = {2, 0, 2, 255, 2, 2, 1, 0};
    const float conf[8] = {0.8f, 0.99f, 0.5f, 0.95f, 0.9f, 0.8f, 0.97f, 0.98f};
    CHECK(thr_of(label, conf, 8, 50, 2) == 0.8f, "50%% of 4: want 0.8");
    CHECK(thr_of(label, conf, 8, 25, 2) == 0.9f, "25%% of 4: want 0.9");
    CHECK(thr_of(label, conf, 8, 75, 2) == 0.8f, "75%% of 4: want 0.8");
    CHECK(thr_of(label, conf, 8, 100, 2) == 0.5f, "100%% of 4: want 0.5");
    CHECK(thr_of(label, conf, 8, 0.001, 2) == 0.9f, "0.001%% of 4: want the largest");

    // apply at 50%: 0.9, 0.8, 0.8 kept (ties at the threshold), the rest dropped
    StRule r = {.mode = ST_MODE_ZS3, .percent = 50, .K = NK, .unseen = UNSEEN};
    float thr[NK], weight[8];
    uint8_t lab[8];
    memcpy(lab, label, sizeof lab);
    st_zs3_thresholds(&r, NULL, lab, conf, 8, thr);
    st_zs3_apply(thr, lab, conf, weight, 8);
    const uint8_t want_lab[8] = {2, 255, 255, 255, 2, 2, 255, 255};
    for (int i = 0; i < 8; i++)
        CHECK(lab[i] == want_lab[i] && weight[i] == (want_lab[i] == 2 ? 1.0f : 0.0f),
              "apply pixel %d: label %d weight %g", i, lab[i], weight[i]);

    // 28% of 25: 0.28 * 25 = 7.000000000000001 in double, whose ceil is 8;
    // the rule wants k = 7, the 7th largest of i/32, i = 1..25
    uint8_t l25[25];
    float c25[25];
    for (int i = 0; i < 25; i++) {
        l25[i] = 3;
        c25[i] = (float)(i + 1) / 32.0f;
    }
    float t28 = thr_of(l25, c25, 25, 28, 3);
    CHECK(t28 == 19.0f / 32.0f, "28%% of 25: got %.9g want 19/32", t28);

    // shared top 16 bits force the second pass: sorted down the bits are
    // 3F010000, 3F000007 x2, 05, 03 x3, 01, 00, 3E000000
    const uint32_t bits[10] = {0x3F000007u, 0x3F000003u, 0x3E000000u, 0x3F000007u, 0x3F000001u,
                               0x3F000005u, 0x3F010000u, 0x3F000003u, 0x3F000000u, 0x3F000003u};
    uint8_t lb[10];
    float cb[10];
    for (int i = 0; i < 10; i++) {
        lb[i] = 2;
        cb[i] = from_bits(bits[i]);
    }
    const double pct[6] = {10, 20, 30, 40, 80, 100};
    const uint32_t want[6] = {0x3F010000u, 0x3F000007u, 0x3F000007u, 0x3F000005u, 0x3F000001u,
                              0x3E000000u};
    for (int j = 0; j < 6; j++) {
        float t = thr_of(lb, cb, 10, pct[j], 2);
        uint32_t u;
        memcpy(&u, &t, sizeof u);
        CHECK(u == want[j], "shared bits, %g%%: got %08x want %08x", pct[j], u, want[j]);
    }
    // 50%: k = 5 lands on the three-way tie at ...03, all three kept
    CHECK(thr_of(lb, cb, 10, 50, 2) == from_bits(0x3F000003u), "shared bits, 50%%");
}

static void test_rule_from(void) {
    Config* cfg = config_new();
    const char* sets[] = {"selftrain.mode=sign", "selftrain.top_p=16", "selftrain.percent=75",
                          "selftrain.temperature=3.5"};
    for (int i = 0; i < 4; i++) {
        char* err = config_apply_set(cfg, sets[i]);
        CHECK(err == NULL, "%s: %s", sets[i], err ? err : "");
        free(err);
    }
    StRule r;
    st_rule_from(&r, cfg, NK, UNSEEN);
    CHECK(r.mode == ST_MODE_SIGN && r.top_p == 16 && r.percent == 75 && r.temperature == 3.5 &&
              r.K == NK && r.unseen == UNSEEN,
          "st_rule_from fields");
    CHECK(strcmp(st_mode_name(r.mode), "sign") == 0, "mode name");
    char* err = config_apply_set(cfg, "selftrain.mode=zs3");
    free(err);
    st_rule_from(&r, cfg, NK, UNSEEN);
    CHECK(r.mode == ST_MODE_ZS3 && strcmp(st_mode_name(r.mode), "zs3") == 0, "zs3 mode");
    CHECK(strcmp(st_mode_name(ST_MODE_CAGNET), "cagnet") == 0, "cagnet name");
    config_free(cfg);
}

int main(void) {
    init_pixels();
    test_cagnet();
    test_zs3_candidates();
    test_sign();
    test_no_unseen();
    test_thresholds();
    test_rule_from();
    return t_report("test_selftrain");
}
