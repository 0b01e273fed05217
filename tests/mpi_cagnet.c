// CaGNet's steps under data parallelism, mpirun -np R (R = 1, 2, 3): every
// rank runs the single-process reference (global batch of 6, dist NULL) and
// the distributed model (6/R samples of that batch, cagnet_set_dist), sums
// the distributed gradients over ranks (dist_allreduce_ranges, scale 1) and
// compares: losses (relative 1e-5), gradients per region (max |diff| <=
// 1e-4 * max |reference|) and, after cagnet_apply, the parameters. Steps:
// three step1, one step2, two mixed step1. Variants: MMD content with MSC
// (gan l1), l2 content without MSC (lsgan), MMD where the last two samples
// are all ignored (with 3 ranks, rank 2 has no valid pixel: its shares are 0
// and it gathers no MMD rows), and per-pixel CE weights (self-training) with
// MSC and l2: random in [0, 1], some 0, the last two samples all 0 (with 3
// ranks, rank 2 has valid pixels but no CE weight). Ignored pixels and zero
// weights are spread unevenly over the samples, so per-rank means would
// differ from the global ones. Also: with train_e = 0 the E gradients are
// exactly zero and the D/G gradients and losses equal those of train_e = 1
// bitwise.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cagnet.h"
#include "common.h"
#include "mpi_testing.h"
#include "testing.h"

#define B_GLOBAL 6
#define IMG 33
#define K_CLASSES 6  // 5 seen, class 5 unseen (never a training label)
#define E_DIM 12
#define TOL_LOSS 1e-5
#define TOL_GRAD 1e-4
#define TOL_PARAM 1e-4

static const char* CONFIG_FMT =
    "run = { seed = 11; };\n"
    "model = { backbone = \"tiny\"; tiny_width = 8; feature_dim = 16; latent_dim = 16;\n"
    "  embedding_dim = 12; aspp_dilations = [1, 2]; cm_channels = 8; cm_dilations = [1, 2, 5];\n"
    "  msc = %s; msc_scales = [0.5, 0.75]; gen_widths = [32, 32]; gen_dropouts = [0.1, 0.1];\n"
    "  d_hidden = 32; d_dropout = 0.5; };\n"
    "loss = { gan = \"%s\"; content = \"%s\"; content_weight = %s; kl_weight = 10.0;\n"
    "  backbone_ce_weight = 0.5; real_ce_weight = 1.0; fake_ce_weight = 0.5;\n"
    "  mixed_real_ce_weight = 0.75; mixed_fake_ce_weight = 0.25; };\n"
    "optim = { lr = 0.01; d_lr = 0.01; g_lr = 0.002; mixed_lr = 0.005; };\n"
    "schedule = { step1_iters = 10; };\n"
    "step2 = { unseen_prior = 3.0; generator_ce_weight = 0.5; };\n";

typedef struct {
    const char* name;
    const char *msc, *gan, *content, *content_weight;
    int ignore_pct[B_GLOBAL];  // share of each sample's pixels ignored
    int weighted;              // step1 with CE weights
    int zero_pct[B_GLOBAL];    // share of each sample's weights that are 0
} Variant;

#define N_VARIANTS 4
static const Variant VARIANTS[N_VARIANTS] = {
    {"mmd+msc", "true", "l1", "mmd", "50.0", {0, 55, 10, 40, 5, 40}, 0, {0}},
    {"l2", "false", "lsgan", "l2", "10.0", {35, 0, 60, 5, 20, 30}, 0, {0}},
    {"mmd, empty rank", "false", "bce", "mmd", "50.0", {0, 40, 10, 25, 100, 100}, 0, {0}},
    {"weighted, msc", "true", "lsgan", "l2", "10.0", {0, 55, 10, 40, 5, 40}, 1,
     {20, 0, 35, 10, 100, 100}},
};

// Largest relative differences seen, for the report.
static double max_loss_rel, max_grad_rel[REGION_COUNT], max_param_rel;

// The global batch (every rank builds all of it): smooth images, label
// blocks, ignored pixels scattered with a per-sample density, and CE weights
// uniform in [0, 1] with zeros at a per-sample density.
static void make_batch(const Variant* v, float* img, uint8_t* lbl, float* w) {
    for (int b = 0; b < B_GLOBAL; b++)
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < IMG; y++)
                for (int x = 0; x < IMG; x++)
                    img[((b * 3 + c) * IMG + y) * IMG + x] =
                        sinf(0.31f * x + 0.17f * y * (c + 1) + 1.3f * b + 0.7f * c) +
                        0.5f * cosf(0.05f * x * y + c);
    for (int b = 0; b < B_GLOBAL; b++)
        for (int y = 0; y < IMG; y++)
            for (int x = 0; x < IMG; x++) {
                int i = (b * IMG + y) * IMG + x;
                int ignored = (int)(hd_rng_uniform(3, 97, (uint64_t)i) * 100) < v->ignore_pct[b];
                lbl[i] = ignored ? 255 : (uint8_t)((x / 7 + 2 * (y / 9) + 3 * b) % (K_CLASSES - 1));
                int zero = (int)(hd_rng_uniform(3, 98, (uint64_t)i) * 100) < v->zero_pct[b];
                // (stream 99 lets the 2-rank run's parameters, 2e-7 apart after two
                // updates, flip a max/ReLU tie at step1 it 2: 6e-4 in the backbone)
                w[i] = zero ? 0.0f : hd_rng_uniform(3, 97, (uint64_t)i);
            }
}

static void make_model(CagNet* m, const Config* cfg, int B) {
    float emb[K_CLASSES * E_DIM];
    uint8_t unseen[K_CLASSES] = {0, 0, 0, 0, 0, 1};
    for (int k = 0; k < K_CLASSES; k++)
        for (int j = 0; j < E_DIM; j++)
            emb[k * E_DIM + j] = sinf(0.7f * k * j + 0.3f * j + k) + 0.2f * cosf(1.9f * k + 0.5f * j);
    cagnet_init(m, cfg, K_CLASSES, emb, unseen, B, IMG, IMG);
}

static double rel_diff(double got, double want) {
    return fabs(got - want) / fmax(fabs(want), 1e-6);
}

static void check_losses(const char* what, const Step1Losses* got, const Step1Losses* want) {
    static const char* names[11] = {"d_gan_real", "d_gan_fake", "d_ce_real", "d_ce_fake",
                                    "e_ce",       "kl",         "g_gan",     "g_content",
                                    "loss_d",     "loss_e",     "loss_g"};
    const float g[11] = {got->d_gan_real, got->d_gan_fake, got->d_ce_real, got->d_ce_fake,
                         got->e_ce,       got->kl,         got->g_gan,     got->g_content,
                         got->loss_d,     got->loss_e,     got->loss_g};
    const float w[11] = {want->d_gan_real, want->d_gan_fake, want->d_ce_real, want->d_ce_fake,
                         want->e_ce,       want->kl,         want->g_gan,     want->g_content,
                         want->loss_d,     want->loss_e,     want->loss_g};
    for (int i = 0; i < 11; i++) {
        double r = rel_diff(g[i], w[i]);
        max_loss_rel = fmax(max_loss_rel, r);
        CHECK(r <= TOL_LOSS, "%s: %s %.9g want %.9g (rel %.3g)", what, names[i], g[i], w[i], r);
    }
}

// Per region: max |got - want| relative to max |want| (want all zero: got too).
static double region_rel(const CagNet* m, const float* got, const float* want, int r) {
    size_t lo = m->pt.region_lo[r], n = m->pt.region_n[r];
    double dmax = 0.0, wmax = 0.0;
    for (size_t i = lo; i < lo + n; i++) {
        dmax = fmax(dmax, fabs((double)got[i] - want[i]));
        wmax = fmax(wmax, fabs((double)want[i]));
    }
    return wmax > 0.0 ? dmax / wmax : (dmax > 0.0 ? INFINITY : 0.0);
}

static void check_grads(const char* what, const CagNet* dst, const CagNet* ref) {
    for (int r = 0; r < REGION_FROZEN; r++) {
        double rel = region_rel(ref, dst->grads, ref->grads, r);
        max_grad_rel[r] = fmax(max_grad_rel[r], rel);
        CHECK(rel <= TOL_GRAD, "%s: %s gradients differ by %.3g of their max", what,
              param_region_name((ParamRegion)r), rel);
    }
}

static void check_params(const char* what, const CagNet* dst, const CagNet* ref) {
    for (int r = 0; r < REGION_COUNT; r++) {
        double rel = region_rel(ref, dst->params, ref->params, r);
        max_param_rel = fmax(max_param_rel, rel);
        CHECK(rel <= TOL_PARAM, "%s: %s parameters differ by %.3g of their max", what,
              param_region_name((ParamRegion)r), rel);
    }
}

// The trainer's part: sum the distributed gradients of the plan's ranges.
static void sum_grads(Dist* d, CagNet* dst, const UpdatePlan* p) {
    size_t off[3], cnt[3];
    int n = cagnet_update_ranges(dst, p, off, cnt);
    dist_allreduce_ranges(d, dst->grads, off, cnt, n, 1000, 1.0f);
}

// With E frozen: E gradients exactly zero, D/G gradients and the losses
// bitwise those of the same weights with E trained (ref's grads hold the
// frozen step's on return).
static void check_frozen_e(CagNet* ref, const float* img, const uint8_t* lbl, const float* w,
                           const StepRng* rng, Step1Losses* frozen) {
    Step1Mode mode = cagnet_mode_mixed(ref);
    CHECK(mode.train_e == 0 && mode.real_ce_weight == 0.75f && mode.fake_ce_weight == 0.25f,
          "cagnet_mode_mixed: %g %g %d", mode.real_ce_weight, mode.fake_ce_weight, mode.train_e);
    Step1Mode trained = mode;
    trained.train_e = 1;
    Step1Losses full;
    cagnet_step1(ref, img, lbl, w, rng, &trained, &full);
    size_t n = ref->pt.total;
    float* g = t_falloc(n);
    memcpy(g, ref->grads, n * sizeof(float));
    cagnet_step1(ref, img, lbl, w, rng, &mode, frozen);
    const ParamTable* pt = &ref->pt;
    size_t e_lo = pt->region_lo[REGION_BACKBONE];
    size_t e_hi = pt->region_lo[REGION_CM] + pt->region_n[REGION_CM];
    size_t nz = 0;
    for (size_t i = e_lo; i < e_hi; i++) nz += ref->grads[i] != 0.0f;
    CHECK(nz == 0, "train_e = 0: %zu of %zu E gradients nonzero", nz, e_hi - e_lo);
    size_t dg_lo = pt->region_lo[REGION_DC];
    size_t dg_n = pt->region_n[REGION_DC] + pt->region_n[REGION_GEN];
    CHECK(memcmp(g + dg_lo, ref->grads + dg_lo, dg_n * sizeof(float)) == 0,
          "train_e = 0: D/G gradients differ from train_e = 1");
    CHECK(memcmp(&full, frozen, sizeof full) == 0, "train_e = 0: losses differ from train_e = 1");
    nz = 0;
    for (size_t i = e_lo; i < e_hi; i++) nz += g[i] != 0.0f;
    CHECK(nz > (e_hi - e_lo) / 2, "train_e = 1: only %zu E gradients nonzero", nz);
    free(g);
}

static void run_variant(Dist* d, const Variant* v) {
    char text[2048];
    snprintf(text, sizeof text, CONFIG_FMT, v->msc, v->gan, v->content, v->content_weight);
    Config* cfg = config_new();
    char* err = config_load_string(cfg, text, "mpi_cagnet config");
    if (!err) err = config_validate(cfg);
    if (err) {
        fprintf(stderr, "config: %s\n", err);
        exit(1);
    }
    float* img = t_falloc((size_t)B_GLOBAL * 3 * IMG * IMG);
    uint8_t* lbl = malloc((size_t)B_GLOBAL * IMG * IMG);
    float* wts = t_falloc((size_t)B_GLOBAL * IMG * IMG);
    make_batch(v, img, lbl, wts);
    int B = B_GLOBAL / d->world, s0 = d->rank * B;
    const float* my_img = img + (size_t)s0 * 3 * IMG * IMG;
    const uint8_t* my_lbl = lbl + (size_t)s0 * IMG * IMG;
    const float* w = v->weighted ? wts : NULL;
    const float* my_w = v->weighted ? wts + (size_t)s0 * IMG * IMG : NULL;
    CagNet ref, dst;
    make_model(&ref, cfg, B_GLOBAL);
    make_model(&dst, cfg, B);
    cagnet_set_dist(&dst, d);
    CHECK(memcmp(ref.params, dst.params, ref.pt.total * sizeof(float)) == 0,
          "%s: initial parameters differ", v->name);
    uint64_t seed = (uint64_t)config_get_int(cfg, "run.seed");
    char what[128];
    for (long it = 0; it < 6; it++) {
        StepRng rr = {seed, it, 0, 1}, rd = {seed, it, s0, 1};
        const char* kind = it < 3 ? "step1" : it == 3 ? "step2" : "mixed step1";
        snprintf(what, sizeof what, "%s, %s it %ld, rank %d of %d", v->name, kind, it, d->rank,
                 d->world);
        UpdatePlan p;
        if (it < 3) {
            Step1Losses lr, ld;
            cagnet_step1(&ref, img, lbl, w, &rr, NULL, &lr);
            cagnet_step1(&dst, my_img, my_lbl, my_w, &rd, NULL, &ld);
            check_losses(what, &ld, &lr);
            p = cagnet_plan_step1(&ref, it);
        } else if (it == 3) {
            float cr = cagnet_step2(&ref, &rr), cd = cagnet_step2(&dst, &rd);
            double rel = rel_diff(cd, cr);
            max_loss_rel = fmax(max_loss_rel, rel);
            CHECK(rel <= TOL_LOSS, "%s: CE %.9g want %.9g", what, cd, cr);
            p = cagnet_plan_step2(&ref, it);
        } else {
            Step1Losses lr, ld;
            check_frozen_e(&ref, img, lbl, w, &rr, &lr);
            Step1Mode mode = cagnet_mode_mixed(&dst);
            cagnet_step1(&dst, my_img, my_lbl, my_w, &rd, &mode, &ld);
            check_losses(what, &ld, &lr);
            p = cagnet_plan_mixed_step1(&ref, it - 4);
        }
        sum_grads(d, &dst, &p);
        check_grads(what, &dst, &ref);
        cagnet_apply(&dst, &p);
        cagnet_apply(&ref, &p);
        check_params(what, &dst, &ref);
        dist_check_params(d, dst.params, dst.pt.total, it);
    }
    cagnet_free(&ref);
    cagnet_free(&dst);
    config_free(cfg);
    free(img), free(lbl), free(wts);
}

// Plans of the mixed stages and the ranges the trainer sums.
static void check_plans(const Config* cfg) {
    CagNet m;
    make_model(&m, cfg, 1);
    const ParamTable* pt = &m.pt;
    UpdatePlan p1 = cagnet_plan_mixed_step1(&m, 3), p2 = cagnet_plan_step2(&m, 3);
    CHECK(p1.update_d && p1.update_g && !p1.update_e && p1.lr_d == p2.lr_d && p1.lr_g == p2.lr_g &&
              p1.lr_d > 0.0f,
          "mixed step1 plan: d %d g %d e %d lr %g %g", p1.update_d, p1.update_g, p1.update_e,
          p1.lr_d, p1.lr_g);
    size_t off[3], cnt[3];
    size_t e_lo = pt->region_lo[REGION_BACKBONE], d_lo = pt->region_lo[REGION_DC],
           g_lo = pt->region_lo[REGION_GEN], g_hi = g_lo + pt->region_n[REGION_GEN];
    UpdatePlan all = cagnet_plan_step1(&m, 0);
    int n = cagnet_update_ranges(&m, &all, off, cnt);
    CHECK(n == 1 && off[0] == e_lo && cnt[0] == g_hi - e_lo, "step1 ranges: %d [%zu +%zu)", n,
          off[0], cnt[0]);
    n = cagnet_update_ranges(&m, &p1, off, cnt);
    CHECK(n == 1 && off[0] == d_lo && cnt[0] == g_hi - d_lo, "mixed ranges: %d [%zu +%zu)", n,
          off[0], cnt[0]);
    UpdatePlan eg = {.update_e = 1, .update_g = 1};  // not adjacent: two ranges
    n = cagnet_update_ranges(&m, &eg, off, cnt);
    CHECK(n == 2 && off[0] == e_lo && off[0] + cnt[0] == d_lo && off[1] == g_lo &&
              cnt[1] == g_hi - g_lo,
          "E+G ranges: %d", n);
    UpdatePlan none = {0};
    CHECK(cagnet_update_ranges(&m, &none, off, cnt) == 0, "no optimizer: ranges");
    cagnet_free(&m);
}

int main(int argc, char** argv) {
    Dist d;
    dist_init(&d, &argc, &argv);
    CHECK(B_GLOBAL % d.world == 0, "run with 1, 2, 3 or 6 ranks");
    for (int v = 0; v < N_VARIANTS; v++) {
        run_variant(&d, &VARIANTS[v]);
        if (v == 0) {
            Config* cfg = config_new();
            char text[2048];
            snprintf(text, sizeof text, CONFIG_FMT, "true", "l1", "mmd", "50.0");
            char* err = config_load_string(cfg, text, "mpi_cagnet config");
            CHECK(!err, "config: %s", err ? err : "");
            check_plans(cfg);
            config_free(cfg);
        }
    }

    double mx[REGION_COUNT + 2];
    for (int r = 0; r < REGION_COUNT; r++) mx[r] = max_grad_rel[r];
    mx[REGION_COUNT] = max_loss_rel, mx[REGION_COUNT + 1] = max_param_rel;
    mpiCheck(MPI_Allreduce(MPI_IN_PLACE, mx, REGION_COUNT + 2, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD));
    if (d.rank == 0) {
        printf("max relative diffs (%d ranks): losses %.3g, params %.3g, grads", d.world,
               mx[REGION_COUNT], mx[REGION_COUNT + 1]);
        for (int r = 0; r < REGION_FROZEN; r++)
            printf(" %s %.3g", param_region_name((ParamRegion)r), mx[r]);
        printf("\n");
    }
    t_mpi_sum_failures(MPI_COMM_WORLD);
    int rank = d.rank, world = d.world;
    dist_finalize(&d);
    return t_mpi_report(rank, world, "mpi_cagnet");
}
