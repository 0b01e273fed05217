// flops_cagnet on the tiny CaGNet (tests/tiny_cagnet.h) against counts
// written out by hand, layer by layer, for a (2, 3, 32, 32) batch: without and
// with MSC, the step1 stage and the mixed stages' step1 (E frozen), step2 with
// and without its generator loss.
//
//   test_flops CFG K B H W   prints flops_print of CFG's model for K classes at
//                            (B, 3, H, W): the bench CLI test compares it with
//                            what `zsseg bench` prints.
#include <stdlib.h>
#include <string.h>

#include "flops.h"
#include "testing.h"
#include "tiny_cagnet.h"

#define NK 5  // classes

// Forward FLOPs of a k x k conv cin -> cout with a (B, cout, ho, wo) output.
static double cv(int B, int cout, int ho, int wo, int cin, int k) {
    return 2.0 * B * cout * ho * wo * cin * k * k;
}

typedef struct {
    double fwd, bwd, bytes_fwd, bytes_bwd;
} HandBackbone;

// The tiny backbone (width 4: stem 3 -> 4; blocks mid/out 4/16, 8/32 with
// stride 2, 16/64, 32/128; ASPP 128 -> 8, two 3x3 branches) at batch B with
// stem output s x s, pooled map p x p and feature map f x f.
static HandBackbone hand_backbone(int B, int s, int p, int f) {
    double stem = cv(B, 4, s, s, 3, 7);
    // each block: reduce, conv3x3, increase, shortcut
    double convs = cv(B, 4, p, p, 4, 1) + cv(B, 4, p, p, 4, 3) + cv(B, 16, p, p, 4, 1) +
                   cv(B, 16, p, p, 4, 1) +                                          // layer2
                   cv(B, 8, f, f, 16, 1) + cv(B, 8, f, f, 8, 3) + cv(B, 32, f, f, 8, 1) +
                   cv(B, 32, f, f, 16, 1) +                                         // layer3
                   cv(B, 16, f, f, 32, 1) + cv(B, 16, f, f, 16, 3) + cv(B, 64, f, f, 16, 1) +
                   cv(B, 64, f, f, 32, 1) +                                         // layer4
                   cv(B, 32, f, f, 64, 1) + cv(B, 32, f, f, 32, 3) + cv(B, 128, f, f, 32, 1) +
                   cv(B, 128, f, f, 64, 1) +                                        // layer5
                   2 * cv(B, 8, f, f, 128, 3);                                      // ASPP
    HandBackbone h;
    h.fwd = stem + convs;
    h.bwd = stem + 2 * convs;  // the stem has no data gradient
    // element counts: stem output, pooled map, one mid map of every block
    // (reduce and conv3x3 each have one), one output map (increase and shortcut each)
    double ns = B * 4.0 * s * s, np = B * 4.0 * p * p;
    double mid = B * (4.0 * p * p + 8.0 * f * f + 16.0 * f * f + 32.0 * f * f);
    double out = B * (16.0 * p * p + 32.0 * f * f + 64.0 * f * f + 128.0 * f * f);
    // forward: BN(+ReLU) 8 per element, residual add + ReLU 12, pool 4 * (ns + 2 np)
    h.bytes_fwd = 8 * ns + 4 * (ns + 2 * np) + 8 * (2 * mid + 2 * out) + 12 * out;
    // backward: with ReLU 12, without (increase, shortcut) 8, block ReLU 12,
    // stem BN+ReLU at the pooled positions 12, pool 4 * (2 np + ns)
    h.bytes_bwd = 12 * np + 4 * (2 * np + ns) + 12 * 2 * mid + 8 * 2 * out + 12 * out;
    return h;
}

typedef struct {
    double cm, trunk, gan, cls, fc1, fc2;
} HandHeads;

// CM (D 8, Cc 4, two context convs), D/C (hidden 6), G (E 4 + D 8 -> 8 -> 8)
// on a (B, 8, f, f) feature map.
static HandHeads hand_heads(int B, int f) {
    HandHeads h;
    h.cm = cv(B, 4, f, f, 8, 3) + cv(B, 4, f, f, 4, 3)  // conv1, conv2
           + cv(B, 2, f, f, 8, 3)                       // selector
           + cv(B, 8, f, f, 8, 1)                       // fuse
           + 2 * cv(B, 8, f, f, 8, 3);                  // mu, logvar
    h.trunk = cv(B, 6, f, f, 8, 1);
    h.gan = cv(B, 1, f, f, 6, 1);
    h.cls = cv(B, NK, f, f, 6, 1);
    h.fc1 = cv(B, 8, f, f, 12, 1);
    h.fc2 = cv(B, 8, f, f, 8, 1);
    return h;
}

static double dc_fwd(const HandHeads* h) { return h->trunk + h->gan + h->cls; }
// D-side CE backward (class head filter + data, trunk filter) and E-side (data only)
static double ce_d(const HandHeads* h) { return 2 * h->cls + h->trunk; }
static double ce_e(const HandHeads* h) { return h->cls + h->trunk; }
// D's GAN backward (GAN head filter + data, trunk filter); G's (data only, into fake)
static double gan_d(const HandHeads* h) { return 2 * h->gan + h->trunk; }
static double gan_g(const HandHeads* h) { return h->gan + h->trunk; }
// G's forward and backward (fc1: filter gradient only)
static double gen_fwd(const HandHeads* h) { return h->fc1 + h->fc2; }
static double gen_bwd(const HandHeads* h) { return h->fc1 + 2 * h->fc2; }

static void check_equal(const char* what, double got, double want) {
    CHECK(got == want, "%s: got %.0f want %.0f", what, got, want);
}

static void check_flops(const char* what, const StepFlops* f, double bb_fwd, double bb_bwd,
                        double hd_fwd, double hd_bwd, double step2, double bytes) {
    char name[128];
    const struct {
        const char* part;
        double got, want;
    } rows[] = {{"backbone_fwd", f->backbone_fwd, bb_fwd},
                {"backbone_bwd", f->backbone_bwd, bb_bwd},
                {"heads_fwd", f->heads_fwd, hd_fwd},
                {"heads_bwd", f->heads_bwd, hd_bwd},
                {"step2", f->step2, step2},
                {"backbone_bytes", f->backbone_bytes, bytes},
                {"step1", flops_step1(f), bb_fwd + bb_bwd + hd_fwd + hd_bwd}};
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        snprintf(name, sizeof name, "%s %s", what, rows[i].part);
        check_equal(name, rows[i].got, rows[i].want);
    }
}

// 32 x 32 input: stem 16, pool ceil(15/2) + 1 = 9, layer3 stride 2: 5.
static void test_single_scale(void) {
    uint8_t unseen[NK] = {0, 0, 0, 1, 1};
    Config* cfg = tiny_config(0, 33);
    CagNet m;
    tiny_cagnet(&m, cfg, NK, unseen);  // built for (1, 3, 16, 16): the counts ignore it
    CHECK(m.sc[0].Hf == 3, "16 x 16 input: feature side %d, want 3 (stem 8, pool 5)", m.sc[0].Hf);
    HandBackbone b = hand_backbone(2, 16, 9, 5);
    HandHeads h = hand_heads(2, 5);
    StepFlops f;
    flops_cagnet(&f, &m, NULL, 2, 32, 32);
    double hd_fwd = h.cm + dc_fwd(&h)         // E+CM, C on x
                    + gen_fwd(&h) + dc_fwd(&h);  // G, D on fake
    double hd_bwd = ce_d(&h) + ce_e(&h) + 2 * h.cm  // CE on real (D and E sides), CM
                    + 2 * gan_d(&h) + gan_g(&h) + gen_bwd(&h);
    double s2 = gen_fwd(&h) + dc_fwd(&h) + ce_d(&h) + ce_e(&h) + gen_bwd(&h);
    check_flops("single scale", &f, b.fwd, b.bwd, hd_fwd, hd_bwd, s2, b.bytes_fwd + b.bytes_bwd);
    cagnet_free(&m);
    config_free(cfg);

    // step2 without its generator loss: C's CE into the parameters only
    cfg = tiny_config(0, 33);
    tiny_set(cfg, "step2.generator_ce_weight=0");
    tiny_cagnet(&m, cfg, NK, unseen);
    flops_cagnet(&f, &m, NULL, 2, 32, 32);
    check_equal("step2 without G", f.step2, gen_fwd(&h) + dc_fwd(&h) + ce_d(&h));
    cagnet_free(&m);
    config_free(cfg);
}

// Scales 1, 0.5, 0.75 of 32: inputs 32, 16 (stem 8, pool ceil(7/2) + 1 = 5,
// feature 3), 24 (stem 12, pool ceil(11/2) + 1 = 7, feature 4); x_max is a
// fourth C output at scale 0's size.
static void test_msc(void) {
    uint8_t unseen[NK] = {0, 1, 0, 0, 1};
    Config* cfg = tiny_config(1, 33);
    CagNet m;
    tiny_cagnet(&m, cfg, NK, unseen);
    HandBackbone b[3] = {hand_backbone(2, 16, 9, 5), hand_backbone(2, 8, 5, 3),
                         hand_backbone(2, 12, 7, 4)};
    HandHeads h[3] = {hand_heads(2, 5), hand_heads(2, 3), hand_heads(2, 4)};
    double bb_fwd = b[0].fwd + b[1].fwd + b[2].fwd, bb_bwd = b[0].bwd + b[1].bwd + b[2].bwd;
    double bytes_fwd = b[0].bytes_fwd + b[1].bytes_fwd + b[2].bytes_fwd;
    double bytes_bwd = b[0].bytes_bwd + b[1].bytes_bwd + b[2].bytes_bwd;
    double scales_fwd = 0, ce_d_all = ce_d(&h[0]), ce_e_all = ce_e(&h[0]), cm_all = 0;  // x_max
    for (int j = 0; j < 3; j++) {
        scales_fwd += h[j].cm + dc_fwd(&h[j]);
        ce_d_all += ce_d(&h[j]);
        ce_e_all += ce_e(&h[j]);
        cm_all += h[j].cm;
    }
    double hd_fwd = scales_fwd + gen_fwd(&h[0]) + 2 * dc_fwd(&h[0]);  // G; D/C on fake and x_max
    double g_side = 2 * gan_d(&h[0]) + gan_g(&h[0]) + gen_bwd(&h[0]);
    double s2 = gen_fwd(&h[0]) + dc_fwd(&h[0]) + ce_d(&h[0]) + ce_e(&h[0]) + gen_bwd(&h[0]);

    StepFlops f;
    flops_cagnet(&f, &m, NULL, 2, 32, 32);
    check_flops("msc step1", &f, bb_fwd, bb_bwd, hd_fwd, ce_d_all + ce_e_all + 2 * cm_all + g_side,
                s2, bytes_fwd + bytes_bwd);

    // the mixed stages' step1: E frozen (no E backward at all), CE on fake on
    Step1Mode mixed = cagnet_mode_mixed(&m);
    CHECK(!mixed.train_e && mixed.fake_ce_weight > 0, "mixed mode: train_e %d, fake CE %g",
          mixed.train_e, mixed.fake_ce_weight);
    flops_cagnet(&f, &m, &mixed, 2, 32, 32);
    check_flops("msc mixed step1", &f, bb_fwd, 0, hd_fwd, ce_d_all + g_side + ce_d(&h[0]), s2,
                bytes_fwd);
    cagnet_free(&m);
    config_free(cfg);
}

// test_flops CFG K B H W
static int print_config(char** argv) {
    Config* cfg = config_new();
    char* err = config_load_file(cfg, argv[1]);
    if (!err) err = config_validate(cfg);
    if (err) {
        fprintf(stderr, "test_flops: %s\n", err);
        return 1;
    }
    int K = atoi(argv[2]), B = atoi(argv[3]), H = atoi(argv[4]), W = atoi(argv[5]);
    int E = config_get_int(cfg, "model.embedding_dim");
    float* emb = t_falloc((size_t)K * E);
    t_fill_normal(emb, (size_t)K * E, 1, 1.0f);
    uint8_t* unseen = calloc((size_t)K, 1);
    CagNet m;
    cagnet_init(&m, cfg, K, emb, unseen, B, H, W);
    StepFlops f;
    flops_cagnet(&f, &m, NULL, B, H, W);
    flops_print(stdout, &f);
    cagnet_free(&m);
    free(emb), free(unseen);
    config_free(cfg);
    return 0;
}

int main(int argc, char** argv) {
    if (argc == 6) return print_config(argv);
    test_single_scale();
    test_msc();
    return t_report("test_flops");
}
