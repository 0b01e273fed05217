// Per-pixel CE weights in cagnet_step1 (self-training's sign mode, DESIGN
// §2.3): the real-feature CEs become sum w*CE / sum w over the valid pixels of
// each output, everything else stays as without weights. Checked on the tiny
// CaGNet with and without MSC:
// - weights all 1 give bitwise the losses and gradients of weights = NULL;
// - random weights: d_ce_real (= e_ce) equals an independent double
//   recomputation from the C logits, with the weights resized by the
//   documented nearest rule; the GAN, KL, content and fake-CE losses are
//   bitwise those of NULL;
// - weight 0 on a pixel set equals ignoring those labels, for the CE terms
//   (losses, E gradients with KL off, D's real-CE gradient);
// - D's real-CE gradient against central differences of the weighted loss.
#include <math.h>
#include <string.h>

#include "tiny_cagnet.h"

enum { TK = 5, NB = 2, IMG = 20 };
#define NPIX (NB * IMG * IMG)

typedef struct {
    Config* cfg;
    CagNet m;
    float img[NB * 3 * IMG * IMG];
    uint8_t lbl[NPIX];
    float w[NPIX];
} Case;

static void case_open(Case* c, int msc, const char* extra) {
    static const uint8_t unseen[TK] = {0, 0, 1, 0, 1};
    c->cfg = config_new();
    tiny_model_keys(c->cfg, msc);
    if (extra) tiny_set(c->cfg, extra);
    char* err = config_validate(c->cfg);
    if (err) {
        fprintf(stderr, "config: %s\n", err);
        exit(1);
    }
    float emb[TK * 4];
    t_fill_normal(emb, TK * 4, 11, 1.0f);
    cagnet_init(&c->m, c->cfg, TK, emb, unseen, NB, IMG, IMG);
    for (int i = 0; i < c->m.pt.n; i++) {  // as tiny_cagnet: biases not 0, varied argmax
        const ParamTensor* t = &c->m.pt.t[i];
        if (t->region == REGION_FROZEN) continue;
        float sd = t->region == REGION_DC ? 0.5f : 0.05f;
        for (size_t j = 0; j < t->numel; j++)
            c->m.params[t->offset + j] += sd * hd_rng_normal(12, (uint64_t)i, j);
    }
    t_fill_normal(c->img, sizeof c->img / sizeof(float), 5, 1.0f);
    // label blocks (unseen classes too, as pseudo-labels), 25% ignored;
    // weights in [0, 1], 20% exactly 0, arbitrary (nonzero) at ignored pixels
    for (int i = 0; i < NPIX; i++) {
        int x = i % IMG, y = i / IMG % IMG, b = i / (IMG * IMG);
        c->lbl[i] = hd_rng_uniform(21, 1, (uint64_t)i) < 0.25f
                        ? 255
                        : (uint8_t)((x / 5 + 2 * (y / 6) + b) % TK);
        float u = hd_rng_uniform(21, 2, (uint64_t)i);
        c->w[i] = u < 0.2f ? 0.0f : u;
    }
}

static void case_close(Case* c) {
    cagnet_free(&c->m);
    config_free(c->cfg);
}

static Step1Losses step(Case* c, const uint8_t* lbl, const float* w, const Step1Mode* mode) {
    StepRng rng = {7, 3, 0, 1};
    Step1Losses L;
    cagnet_step1(&c->m, c->img, lbl, w, &rng, mode, &L);
    return L;
}

// resize_nearest's documented rule, written out: min(floor(dst * (float)in/out), in-1)
static int nearest(int dst, int in, int out) {
    int s = (int)floorf((float)dst * ((float)in / (float)out));
    return s < in - 1 ? s : in - 1;
}

// sum w*CE / sum w over the valid pixels of one C output (B, K, Hf, Wf), the
// full-resolution labels and weights sampled at its size; in double.
static double ref_ce(const float* cls, int Hf, int Wf, const uint8_t* lbl, const float* w) {
    double s = 0.0, sw = 0.0;
    int HW = Hf * Wf;
    for (int b = 0; b < NB; b++)
        for (int p = 0; p < HW; p++) {
            int src = (b * IMG + nearest(p / Wf, IMG, Hf)) * IMG + nearest(p % Wf, IMG, Wf);
            if (lbl[src] == 255) continue;
            const float* z = cls + (size_t)b * TK * HW + p;
            double mx = -INFINITY, e = 0.0;
            for (int k = 0; k < TK; k++) mx = fmax(mx, z[(size_t)k * HW]);
            for (int k = 0; k < TK; k++) e += exp(z[(size_t)k * HW] - mx);
            s += w[src] * (mx + log(e) - z[(size_t)lbl[src] * HW]);
            sw += w[src];
        }
    return sw > 0.0 ? s / sw : 0.0;
}

// d_ce_real recomputed from the last step's C outputs: the mean over outputs.
static double ref_real_ce(const CagNet* m, const uint8_t* lbl, const float* w) {
    double s = 0.0;
    for (int j = 0; j < m->n_scales; j++)
        s += ref_ce(m->sc[j].dc.cls, m->sc[j].Hf, m->sc[j].Wf, lbl, w);
    if (m->n_scales == 1) return s;
    s += ref_ce(m->dc_max.cls, m->sc[0].Hf, m->sc[0].Wf, lbl, w);
    return s / (m->n_scales + 1);
}

static size_t count_unequal(const float* a, const float* b, size_t n) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += a[i] != b[i];
    return bad;
}

static void test_ones(int msc) {
    Case c;
    case_open(&c, msc, NULL);
    size_t P = c.m.pt.total;
    Step1Losses l0 = step(&c, c.lbl, NULL, NULL);
    float* g0 = t_falloc(P);
    memcpy(g0, c.m.grads, P * sizeof(float));
    float ones[NPIX];
    for (int i = 0; i < NPIX; i++) ones[i] = 1.0f;
    Step1Losses l1 = step(&c, c.lbl, ones, NULL);
    CHECK(memcmp(&l0, &l1, sizeof l0) == 0,
          "msc %d: weights 1: losses differ from NULL (ce %.9g vs %.9g)", msc, l1.d_ce_real,
          l0.d_ce_real);
    CHECK(memcmp(g0, c.m.grads, P * sizeof(float)) == 0,
          "msc %d: weights 1: %zu gradients differ from NULL", msc,
          count_unequal(g0, c.m.grads, P));
    free(g0);
    case_close(&c);
}

static void test_reference(int msc) {
    Case c;
    case_open(&c, msc, NULL);
    Step1Losses l0 = step(&c, c.lbl, NULL, NULL);
    float ones[NPIX];
    for (int i = 0; i < NPIX; i++) ones[i] = 1.0f;
    double plain = ref_real_ce(&c.m, c.lbl, ones);  // the reference itself, unweighted
    CHECK(fabs(l0.d_ce_real - plain) <= 1e-5 * plain, "msc %d: unweighted CE %.9g reference %.9g",
          msc, l0.d_ce_real, plain);
    Step1Losses lw = step(&c, c.lbl, c.w, NULL);
    double want = ref_real_ce(&c.m, c.lbl, c.w);
    double rel = fabs(lw.d_ce_real - want) / want;
    printf("msc %d: weighted CE %.7f (reference %.7f, rel %.2g), unweighted %.7f\n", msc,
           lw.d_ce_real, want, rel, l0.d_ce_real);
    CHECK(rel <= 1e-5, "msc %d: weighted CE %.9g want %.9g (rel %.3g)", msc, lw.d_ce_real, want,
          rel);
    CHECK(lw.e_ce == lw.d_ce_real, "msc %d: e_ce %.9g != d_ce_real %.9g", msc, lw.e_ce,
          lw.d_ce_real);
    CHECK(fabs(lw.d_ce_real - l0.d_ce_real) > 1e-3 * l0.d_ce_real,
          "msc %d: the weights changed nothing (%.9g vs %.9g)", msc, lw.d_ce_real, l0.d_ce_real);
    CHECK(lw.d_gan_real == l0.d_gan_real && lw.d_gan_fake == l0.d_gan_fake &&
              lw.d_ce_fake == l0.d_ce_fake && lw.kl == l0.kl && lw.g_gan == l0.g_gan &&
              lw.g_content == l0.g_content && lw.loss_g == l0.loss_g,
          "msc %d: weights changed a loss other than the real CEs", msc);
    case_close(&c);
}

// D's real-CE gradient alone: E frozen, fake CE off, minus the same step
// without the real CE (which leaves D's GAN gradients).
static void d_ce_grad(Case* c, const uint8_t* lbl, const float* w, float* out) {
    const ParamTable* pt = &c->m.pt;
    size_t lo = pt->region_lo[REGION_DC], n = pt->region_n[REGION_DC];
    Step1Mode off = {0.0f, 0.0f, 0};
    step(c, lbl, w, &off);
    memcpy(out, c->m.grads + lo, n * sizeof(float));
    Step1Mode on = {1.0f, 0.0f, 0};
    step(c, lbl, w, &on);
    for (size_t i = 0; i < n; i++) out[i] = c->m.grads[lo + i] - out[i];
}

static double max_abs(const float* x, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
    return m;
}

static void test_zero_is_ignore(int msc) {
    Case c;
    case_open(&c, msc, "loss.kl_weight=0");  // E's gradient: the CE through C only
    const ParamTable* pt = &c.m.pt;
    float w01[NPIX];
    uint8_t dropped[NPIX];
    for (int i = 0; i < NPIX; i++) {
        w01[i] = c.w[i] == 0.0f ? 0.0f : 1.0f;
        dropped[i] = c.w[i] == 0.0f ? 255 : c.lbl[i];
    }
    size_t e_lo = pt->region_lo[REGION_BACKBONE], d_n = pt->region_n[REGION_DC];
    size_t e_n = pt->region_lo[REGION_CM] + pt->region_n[REGION_CM] - e_lo;
    float* ge = t_falloc(e_n);
    Step1Losses lw = step(&c, c.lbl, w01, NULL);
    memcpy(ge, c.m.grads + e_lo, e_n * sizeof(float));
    Step1Losses ld = step(&c, dropped, NULL, NULL);
    CHECK(lw.d_ce_real == ld.d_ce_real && lw.e_ce == ld.e_ce,
          "msc %d: weight 0 vs ignored: CE %.9g vs %.9g", msc, lw.d_ce_real, ld.d_ce_real);
    CHECK(lw.d_gan_real != ld.d_gan_real, "msc %d: the GAN loss should still see the pixels", msc);
    size_t bad = count_unequal(ge, c.m.grads + e_lo, e_n);
    CHECK(bad == 0 && max_abs(ge, e_n) > 0.0,
          "msc %d: weight 0 vs ignored: %zu of %zu E gradients differ", msc, bad, e_n);
    float *gw = t_falloc(d_n), *gd = t_falloc(d_n);
    d_ce_grad(&c, c.lbl, w01, gw);
    d_ce_grad(&c, dropped, NULL, gd);
    double scale = max_abs(gd, d_n);
    t_check_array("weight 0 vs ignored: D's real-CE gradient", gw, gd, d_n, 1e-6 * scale, 0.0);
    CHECK(scale > 0.0, "msc %d: D's real-CE gradient is zero", msc);
    free(ge), free(gw), free(gd);
    case_close(&c);
}

// The weighted real CE recomputed after a step with the perturbed parameters.
static double fd_loss(void* ctx) {
    Case* c = ctx;
    Step1Mode on = {1.0f, 0.0f, 0};
    step(c, c->lbl, c->w, &on);
    return ref_real_ce(&c->m, c->lbl, c->w);
}

static void test_fd(int msc) {
    Case c;
    case_open(&c, msc, NULL);
    const ParamTable* pt = &c.m.pt;
    size_t lo = pt->region_lo[REGION_DC], n = pt->region_n[REGION_DC];
    float* g = t_falloc(n);
    d_ce_grad(&c, c.lbl, c.w, g);
    char what[64];
    snprintf(what, sizeof what, "msc %d: D's weighted real CE", msc);
    // ~23 entries; float logits leave ~1e-5 of the largest entry of noise
    t_gradcheck(what, c.m.params + lo, g, n, n / 23 + 1, fd_loss, &c, 1e-3,
                3e-5 * max_abs(g, n), 1e-3);
    free(g);
    case_close(&c);
}

int main(void) {
    for (int msc = 0; msc < 2; msc++) {
        test_ones(msc);
        test_reference(msc);
        test_zero_is_ignore(msc);
        test_fd(msc);
    }
    return t_report("test_cagnet_weights");
}
