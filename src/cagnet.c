#include "cagnet.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "hd_math.h"
#include "loss.h"
#include "resize.h"
#include "schedule.h"
#include "tensor_ops.h"

#define DC_ID_REAL 100
#define DC_ID_FAKE 101
#define DC_ID_MSC 102  // + output index j (scales 1.., then x_max)

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }
static float* falloc(size_t n) { return callocCheck(n ? n : 1, sizeof(float)); }

// ---------------------------------------------------------------- build

static void read_settings(CagNet* m, const Config* cfg) {
    m->cfg = cfg;
    m->D = config_get_int(cfg, "model.feature_dim");
    if (config_get_int(cfg, "model.latent_dim") != m->D)
        ZS_FAIL("set model.latent_dim = model.feature_dim (z is added to h)",
                "CaGNet needs model.latent_dim (%d) == model.feature_dim (%d)",
                config_get_int(cfg, "model.latent_dim"), m->D);
    m->n_scales = 1;
    m->scales[0] = 1.0;
    if (config_get_bool(cfg, "model.msc")) {
        int n = 0;
        const double* s = config_get_float_list(cfg, "model.msc_scales", &n);
        if (n + 1 > CAGNET_MAX_SCALES)
            ZS_FAIL("use at most 3 entries in model.msc_scales", "model.msc_scales has %d entries",
                    n);
        for (int i = 0; i < n; i++) m->scales[1 + i] = s[i];
        m->n_scales = 1 + n;
    }
    const char* gan = config_get_string(cfg, "loss.gan");
    m->gan_kind = !strcmp(gan, "l1") ? GAN_L1 : !strcmp(gan, "lsgan") ? GAN_LSGAN : GAN_BCE;
    m->content_mmd = config_is(cfg, "loss.content", "mmd");
    m->gan_weight = (float)config_get_float(cfg, "loss.gan_weight");
    m->content_weight = (float)config_get_float(cfg, "loss.content_weight");
    m->kl_weight = (float)config_get_float(cfg, "loss.kl_weight");
    m->backbone_ce_weight = (float)config_get_float(cfg, "loss.backbone_ce_weight");
    m->real_ce_weight = (float)config_get_float(cfg, "loss.real_ce_weight");
    m->fake_ce_weight = (float)config_get_float(cfg, "loss.fake_ce_weight");
    const double* sig = config_get_float_list(cfg, "loss.mmd_sigmas", &m->n_sigmas);
    m->mmd_sigmas = falloc((size_t)m->n_sigmas);
    for (int i = 0; i < m->n_sigmas; i++) m->mmd_sigmas[i] = (float)sig[i];
    m->step2_cls_weight = (float)config_get_float(cfg, "step2.classifier_ce_weight");
    m->step2_gen_weight = (float)config_get_float(cfg, "step2.generator_ce_weight");
}

// E+CM SGD groups: backbone 1x, CM 5x (both with decay), ASPP weights 10x
// with decay, ASPP biases 20x without. D and G: one Adam group each.
static void build_optimizers(CagNet* m) {
    const Config* cfg = m->cfg;
    const ParamTable* pt = &m->pt;
    float wd = (float)config_get_float(cfg, "optim.weight_decay");
    ParamGroup* g = mallocCheck((size_t)(pt->n + 2) * sizeof *g);
    int n = 0;
    g[n++] = (ParamGroup){"backbone", pt->region_lo[REGION_BACKBONE],
                          pt->region_n[REGION_BACKBONE], 1.0f, wd};
    for (int i = 0; i < pt->n; i++) {
        const ParamTensor* t = &pt->t[i];
        if (t->region != REGION_ASPP) continue;
        int w = t->kind == PARAM_CONV_WEIGHT;
        g[n++] = (ParamGroup){w ? "aspp.weight" : "aspp.bias", t->offset, t->numel,
                              (float)config_get_float(cfg, w ? "optim.lr_mult_aspp_weight"
                                                             : "optim.lr_mult_aspp_bias"),
                              w ? wd : 0.0f};
    }
    g[n++] = (ParamGroup){"cm", pt->region_lo[REGION_CM], pt->region_n[REGION_CM],
                          (float)config_get_float(cfg, "optim.lr_mult_cm"), wd};
    SgdConfig sgd = {(float)config_get_float(cfg, "optim.momentum")};
    optimizer_init_sgd(&m->opt_e, sgd, g, n, pt->total);
    free(g);

    AdamConfig adam = {(float)config_get_float(cfg, "optim.adam_beta1"),
                       (float)config_get_float(cfg, "optim.adam_beta2"), 1e-8f};
    ParamGroup d = {"dc", pt->region_lo[REGION_DC], pt->region_n[REGION_DC], 1.0f,
                    (float)config_get_float(cfg, "optim.d_weight_decay")};
    ParamGroup gg = {"gen", pt->region_lo[REGION_GEN], pt->region_n[REGION_GEN], 1.0f,
                     (float)config_get_float(cfg, "optim.g_weight_decay")};
    optimizer_init_adam(&m->opt_d, adam, &d, 1, pt->total);
    optimizer_init_adam(&m->opt_g, adam, &gg, 1, pt->total);
}

static void alloc_acts(CagNet* m, int B, int H, int W) {
    m->B = B, m->H = H, m->W = W;
    size_t ws = 0, dcls = 0;
    for (int j = 0; j < m->n_scales; j++) {
        CagScale* s = &m->sc[j];
        s->H = j ? (int)floor(H * m->scales[j]) : H;
        s->W = j ? (int)floor(W * m->scales[j]) : W;
        backbone_acts_alloc(&s->bb, &m->bb, B, s->H, s->W);
        s->Hf = s->bb.Hf, s->Wf = s->bb.Wf;
        size_t nf = (size_t)B * m->D * s->Hf * s->Wf;
        s->img = j ? falloc((size_t)B * 3 * s->H * s->W) : NULL;
        s->lbl = callocCheck((size_t)B * s->Hf * s->Wf, 1);
        cm_acts_alloc(&s->cm, &m->cm, B, s->Hf, s->Wf);
        dc_acts_alloc(&s->dc, &m->dc, B, s->Hf, s->Wf);
        s->dx = falloc(nf);
        s->dh = falloc(nf);
        ws = max_sz(ws, backbone_workspace_floats(&m->bb, B, s->H, s->W));
        ws = max_sz(ws, cm_workspace_floats(&m->cm, B, s->Hf, s->Wf));
        ws = max_sz(ws, dc_workspace_floats(&m->dc, B, s->Hf, s->Wf));
        dcls = max_sz(dcls, (size_t)B * m->K * s->Hf * s->Wf);
    }
    int h = m->sc[0].Hf, w = m->sc[0].Wf;
    size_t n0 = (size_t)B * m->D * h * w;
    if (m->n_scales > 1) {
        for (int j = 1; j < m->n_scales; j++) m->sc[j].x_up = falloc(n0);
        m->x_max = falloc(n0);
        m->dx_max = falloc(n0);
        m->which = callocCheck(n0, 1);
        dc_acts_alloc(&m->dc_max, &m->dc, B, h, w);
    }
    m->emap = falloc((size_t)B * m->E * h * w);
    m->latent = falloc(n0);
    m->y2 = callocCheck((size_t)B * h * w, 1);
    gen_acts_alloc(&m->gen_acts, &m->gen, B, h, w);
    dc_acts_alloc(&m->dc_fake, &m->dc, B, h, w);
    m->dfake = falloc(n0);
    m->dgan = falloc((size_t)B * h * w);
    m->dcls = falloc(dcls);
    m->valid = callocCheck((size_t)B * h * w, 1);
    m->cls_start = callocCheck((size_t)m->K + 1, sizeof(int));
    m->cls_fill = callocCheck((size_t)m->K, sizeof(int));
    m->cls_pos = callocCheck((size_t)B * h * w, sizeof(int));
    ws = max_sz(ws, gen_workspace_floats(&m->gen, B, h, w));
    m->ws_n = ws;
    m->ws = falloc(ws);
}

void cagnet_init(CagNet* m, const Config* cfg, int K, const float* emb, const uint8_t* unseen,
                 int B, int H, int W) {
    memset(m, 0, sizeof *m);
    read_settings(m, cfg);
    m->K = K;
    m->E = config_get_int(cfg, "model.embedding_dim");
    m->emb = falloc((size_t)K * m->E);
    memcpy(m->emb, emb, (size_t)K * m->E * sizeof(float));
    m->class_cum = callocCheck((size_t)K, sizeof(uint32_t));
    uint32_t prior = (uint32_t)config_get_float(cfg, "step2.unseen_prior");
    for (int c = 0, acc = 0; c < K; c++) {
        acc += unseen[c] ? 1 + (int)prior : 1;
        m->class_cum[c] = (uint32_t)acc;
    }

    BackboneConfig bc;
    CmConfig cc;
    GenConfig gc;
    DcConfig dcc;
    backbone_config_from(&bc, cfg);
    cm_config_from(&cc, cfg);
    gen_config_from(&gc, cfg);
    dc_config_from(&dcc, cfg, K);
    param_table_init(&m->pt);
    backbone_build(&m->bb, &m->pt, &bc);
    cm_build(&m->cm, &m->pt, &cc);
    dc_build(&m->dc, &m->pt, &dcc);
    gen_build(&m->gen, &m->pt, &gc);
    param_table_finalize(&m->pt);
    m->params = falloc(m->pt.total);
    m->grads = falloc(m->pt.total);
    param_init_default(&m->pt, m->params, (uint64_t)config_get_int(cfg, "run.seed"));
    build_optimizers(m);
    alloc_acts(m, B, H, W);
}

void cagnet_free(CagNet* m) {
    for (int j = 0; j < m->n_scales; j++) {
        CagScale* s = &m->sc[j];
        backbone_acts_free(&s->bb);
        cm_acts_free(&s->cm);
        dc_acts_free(&s->dc);
        free(s->img), free(s->lbl), free(s->dx), free(s->dh), free(s->x_up);
    }
    if (m->n_scales > 1) dc_acts_free(&m->dc_max);
    free(m->x_max), free(m->dx_max), free(m->which);
    gen_acts_free(&m->gen_acts);
    dc_acts_free(&m->dc_fake);
    free(m->emap), free(m->latent), free(m->y2), free(m->dfake), free(m->dgan), free(m->dcls);
    free(m->valid), free(m->cls_start), free(m->cls_fill), free(m->cls_pos), free(m->rows), free(m->ws);
    optimizer_free(&m->opt_e);
    optimizer_free(&m->opt_d);
    optimizer_free(&m->opt_g);
    backbone_free(&m->bb);
    param_table_free(&m->pt);
    free(m->params), free(m->grads), free(m->emb), free(m->class_cum), free(m->mmd_sigmas);
    memset(m, 0, sizeof *m);
}

// ---------------------------------------------------------------- pieces

// Embedding of each pixel's label; zeros where ignored.
static void embed_labels(const CagNet* m, float* emap, const uint8_t* lbl, int B, int HW) {
#pragma omp parallel for
    for (int b = 0; b < B; b++)
        for (int e = 0; e < m->E; e++) {
            float* dst = emap + ((size_t)b * m->E + e) * HW;
            const uint8_t* y = lbl + (size_t)b * HW;
            for (int p = 0; p < HW; p++) dst[p] = y[p] == 255 ? 0.0f : m->emb[(size_t)y[p] * m->E + e];
        }
}

static void valid_mask(uint8_t* v, const uint8_t* lbl, size_t n) {
    for (size_t i = 0; i < n; i++) v[i] = lbl[i] != 255;
}

// CE of one C output: loss, and (when dst_grads or dx wanted) its gradient
// pushed through C with the given scales. Two scales because D's and E's
// losses weight the same CE differently.
static float ce_output(CagNet* m, const DcActs* a, const float* x, const uint8_t* lbl,
                       float scale_d, float scale_e, float* dx) {
    size_t n = (size_t)a->B * m->K * a->H * a->W;
    int HW = a->H * a->W;
    memset(m->dcls, 0, n * sizeof(float));
    float loss = softmax_ce_forward_backward(m->dcls, a->cls, lbl, NULL, a->B, m->K, HW, 1.0f);
    if (scale_d != 0.0f) {
        for (size_t i = 0; i < n; i++) m->dcls[i] *= scale_d;
        dc_backward(&m->dc, m->params, m->grads, a, x, NULL, m->dcls, NULL, m->ws);
        if (scale_e != 0.0f)
            for (size_t i = 0; i < n; i++) m->dcls[i] *= scale_e / scale_d;
    } else {
        for (size_t i = 0; i < n; i++) m->dcls[i] *= scale_e;
    }
    if (scale_e != 0.0f && dx) dc_backward(&m->dc, m->params, NULL, a, x, NULL, m->dcls, dx, m->ws);
    return loss;
}

// Content loss between fake and real (detached) features over valid pixels,
// gradient (scaled) into dfake. mmd: per class, rows in raster order.
static float content_loss(CagNet* m, const float* fake, const float* real, const uint8_t* lbl,
                          const uint8_t* valid, float scale) {
    // (valid == lbl != 255: the MSE takes the mask, MMD groups by label)
    int B = m->B, D = m->D, HW = m->sc[0].Hf * m->sc[0].Wf;
    if (!m->content_mmd) return mse_forward_backward(m->dfake, fake, real, valid, B, D, HW, scale);
    // counting sort of valid pixels by class
    int *start = m->cls_start, *pos = m->cls_pos, *fill = m->cls_fill;
    memset(start, 0, ((size_t)m->K + 1) * sizeof(int));
    for (int i = 0; i < B * HW; i++)
        if (lbl[i] != 255) start[lbl[i] + 1]++;
    for (int c = 0; c < m->K; c++) start[c + 1] += start[c];
    int P = start[m->K];
    memcpy(fill, start, (size_t)m->K * sizeof(int));
    for (int i = 0; i < B * HW; i++)
        if (lbl[i] != 255) pos[fill[lbl[i]]++] = i;
    size_t need = (size_t)3 * P * D + mmd_grouped_workspace_floats(start, start, m->K);
    if (need > m->rows_n) {  // grows to the largest batch seen, then stays
        free(m->rows);
        m->rows = falloc(need);
        m->rows_n = need;
    }
    float *X = m->rows, *Y = X + (size_t)P * D, *dX = Y + (size_t)P * D, *ws = dX + (size_t)P * D;
#pragma omp parallel for
    for (int r = 0; r < P; r++) {
        int b = pos[r] / HW, p = pos[r] % HW;
        for (int d = 0; d < D; d++) {
            size_t src = ((size_t)b * D + d) * HW + p;
            X[(size_t)r * D + d] = fake[src];
            Y[(size_t)r * D + d] = real[src];
            dX[(size_t)r * D + d] = 0.0f;
        }
    }
    float loss = mmd_grouped_forward_backward(dX, X, Y, start, start, m->K, D, m->mmd_sigmas,
                                              m->n_sigmas, ws, scale);
#pragma omp parallel for
    for (int r = 0; r < P; r++) {
        int b = pos[r] / HW, p = pos[r] % HW;
        for (int d = 0; d < D; d++) m->dfake[((size_t)b * D + d) * HW + p] += dX[(size_t)r * D + d];
    }
    return loss;
}

// ---------------------------------------------------------------- step1

// E+CM at every scale, labels at every output size, and the MSC fusion.
static void encode(CagNet* m, const float* img, const uint8_t* labels, const StepRng* rng) {
    int B = m->B;
    CagScale* s0 = &m->sc[0];
    for (int j = 0; j < m->n_scales; j++) {
        CagScale* s = &m->sc[j];
        const float* in = img;
        if (j) {
            resize_bilinear_forward(s->img, img, B, 3, m->H, m->W, s->H, s->W, 0);
            in = s->img;
        }
        backbone_forward(&m->bb, m->params, &s->bb, in, m->ws);
        cm_forward(&m->cm, m->params, &s->cm, s->bb.h, j, rng, m->ws);
        resize_nearest_labels(s->lbl, labels, B, m->H, m->W, s->Hf, s->Wf);
    }
    if (m->n_scales == 1) return;
    const float* ins[CAGNET_MAX_SCALES] = {s0->cm.x};
    for (int j = 1; j < m->n_scales; j++) {
        CagScale* s = &m->sc[j];
        resize_bilinear_forward(s->x_up, s->cm.x, B, m->D, s->Hf, s->Wf, s0->Hf, s0->Wf, 0);
        ins[j] = s->x_up;
    }
    max_fuse_forward(m->x_max, m->which, ins, m->n_scales, (size_t)B * m->D * s0->Hf * s0->Wf);
}

void cagnet_step1(CagNet* m, const float* img, const uint8_t* labels, const StepRng* rng,
                  Step1Losses* out) {
    int B = m->B, D = m->D;
    CagScale* s0 = &m->sc[0];
    int HW = s0->Hf * s0->Wf;
    size_t n0 = (size_t)B * D * HW;
    memset(m->grads, 0, m->pt.total * sizeof(float));
    encode(m, img, labels, rng);

    // G on the label embeddings and the detached latent code
    embed_labels(m, m->emap, s0->lbl, B, HW);
    gen_forward(&m->gen, m->params, &m->gen_acts, m->emap, s0->cm.z, rng, m->ws);
    const float* fake = m->gen_acts.fake;

    // D/C calls: real (also MSC output 0), fake, the other scales, x_max
    dc_forward(&m->dc, m->params, &s0->dc, s0->cm.x, DC_ID_REAL, rng, m->ws);
    dc_forward(&m->dc, m->params, &m->dc_fake, fake, DC_ID_FAKE, rng, m->ws);
    for (int j = 1; j < m->n_scales; j++)
        dc_forward(&m->dc, m->params, &m->sc[j].dc, m->sc[j].cm.x, DC_ID_MSC + j - 1, rng, m->ws);
    if (m->n_scales > 1)
        dc_forward(&m->dc, m->params, &m->dc_max, m->x_max, DC_ID_MSC + m->n_scales - 1, rng,
                   m->ws);

    uint8_t* valid = m->valid;
    valid_mask(valid, s0->lbl, (size_t)B * HW);
    Step1Losses L = {0};

    // D set: GAN real/fake; CE_msc on real outputs (the E set's CE reuses the
    // same C outputs with its own weight, pushed into dx instead of params)
    memset(m->dgan, 0, (size_t)B * HW * sizeof(float));
    L.d_gan_real = gan_loss_forward_backward(m->dgan, s0->dc.gan, valid, m->gan_kind, 1.0f,
                                             (size_t)B * HW, 1.0f);
    dc_backward(&m->dc, m->params, m->grads, &s0->dc, s0->cm.x, m->dgan, NULL, NULL, m->ws);
    int n_out = m->n_scales > 1 ? m->n_scales + 1 : 1;
    float wd = m->real_ce_weight / n_out, we = m->backbone_ce_weight / n_out;
    for (int j = 0; j < m->n_scales; j++)
        memset(m->sc[j].dx, 0, (size_t)B * D * m->sc[j].Hf * m->sc[j].Wf * sizeof(float));
    float ce = 0.0f;
    for (int j = 0; j < m->n_scales; j++) {
        CagScale* s = &m->sc[j];
        ce += ce_output(m, &s->dc, s->cm.x, s->lbl, wd, we, s->dx);
    }
    if (m->n_scales > 1) {
        memset(m->dx_max, 0, n0 * sizeof(float));
        ce += ce_output(m, &m->dc_max, m->x_max, s0->lbl, wd, we, m->dx_max);
    }
    L.d_ce_real = L.e_ce = ce / n_out;

    memset(m->dgan, 0, (size_t)B * HW * sizeof(float));
    L.d_gan_fake = gan_loss_forward_backward(m->dgan, m->dc_fake.gan, valid, m->gan_kind, 0.0f,
                                             (size_t)B * HW, 1.0f);
    dc_backward(&m->dc, m->params, m->grads, &m->dc_fake, fake, m->dgan, NULL, NULL, m->ws);
    L.d_ce_fake = ce_output(m, &m->dc_fake, fake, s0->lbl, m->fake_ce_weight, 0.0f, NULL);

    // G set: fool D, match the real features (detached)
    memset(m->dgan, 0, (size_t)B * HW * sizeof(float));
    memset(m->dfake, 0, n0 * sizeof(float));
    L.g_gan = gan_loss_forward_backward(m->dgan, m->dc_fake.gan, valid, m->gan_kind, 1.0f,
                                        (size_t)B * HW, m->gan_weight);
    dc_backward(&m->dc, m->params, NULL, &m->dc_fake, fake, m->dgan, NULL, m->dfake, m->ws);
    L.g_content = content_loss(m, fake, s0->cm.x, s0->lbl, valid, m->content_weight);
    gen_backward(&m->gen, m->params, m->grads, &m->gen_acts, m->dfake, m->ws);

    // E set: CE through C (above) plus KL at scale 0, back through each scale
    // KL gradients in buffers step1 is done with: dfake (G has used it) and
    // latent (only step2 uses it)
    float* dmu = m->dfake;
    float* dlv = m->latent;
    memset(dmu, 0, n0 * sizeof(float));
    memset(dlv, 0, n0 * sizeof(float));
    L.kl = kl_forward_backward(dmu, dlv, s0->cm.mu, s0->cm.logvar, valid, B, D, HW, m->kl_weight);
    if (m->n_scales > 1) {
        // route x_max's gradient to the winning scale, then down each upsampling
        float* douts[CAGNET_MAX_SCALES] = {s0->dx};
        for (int j = 1; j < m->n_scales; j++) {
            douts[j] = m->sc[j].x_up;  // reused as the gradient of x_up
            memset(douts[j], 0, n0 * sizeof(float));
        }
        max_fuse_backward(douts, m->dx_max, m->which, m->n_scales, n0);
        for (int j = 1; j < m->n_scales; j++) {
            CagScale* s = &m->sc[j];
            resize_bilinear_backward(s->dx, douts[j], B, D, s->Hf, s->Wf, s0->Hf, s0->Wf, 0);
        }
    }
    for (int j = 0; j < m->n_scales; j++) {
        CagScale* s = &m->sc[j];
        memset(s->dh, 0, (size_t)B * D * s->Hf * s->Wf * sizeof(float));
        cm_backward(&m->cm, m->params, m->grads, &s->cm, s->bb.h, s->dx, j ? NULL : dmu,
                    j ? NULL : dlv, s->dh, m->ws);
        backbone_backward(&m->bb, m->params, m->grads, &s->bb, s->dh, m->ws);
    }

    L.loss_d = L.d_gan_real + L.d_gan_fake + m->real_ce_weight * L.d_ce_real +
               m->fake_ce_weight * L.d_ce_fake;
    L.loss_e = m->backbone_ce_weight * L.e_ce + m->kl_weight * L.kl;
    L.loss_g = m->gan_weight * L.g_gan + m->content_weight * L.g_content;
    *out = L;
}

// ---------------------------------------------------------------- step2

float cagnet_step2(CagNet* m, const StepRng* rng) {
    int B = m->B, D = m->D;
    int HW = m->sc[0].Hf * m->sc[0].Wf;
    uint32_t total = m->class_cum[m->K - 1];
    memset(m->grads, 0, m->pt.total * sizeof(float));
#pragma omp parallel for
    for (int b = 0; b < B; b++) {
        uint64_t sample = (uint64_t)(rng->sample0 + b);
        uint64_t cs = rng_stream(RNG_CLASS_DRAW, (uint64_t)rng->iter, sample);
        for (int p = 0; p < HW; p++) {
            uint32_t u = rng_uint_below(rng->seed, cs, (uint64_t)p, total);
            int c = 0;
            while (m->class_cum[c] <= u) c++;
            m->y2[(size_t)b * HW + p] = (uint8_t)c;
        }
        rng_fill_normal(m->latent + (size_t)b * D * HW, (size_t)D * HW, rng->seed,
                        rng_stream(RNG_LATENT, (uint64_t)rng->iter, sample), 0);
    }
    embed_labels(m, m->emap, m->y2, B, HW);
    gen_forward(&m->gen, m->params, &m->gen_acts, m->emap, m->latent, rng, m->ws);
    dc_forward(&m->dc, m->params, &m->dc_fake, m->gen_acts.fake, DC_ID_REAL, rng, m->ws);
    memset(m->dfake, 0, (size_t)B * D * HW * sizeof(float));
    float ce = ce_output(m, &m->dc_fake, m->gen_acts.fake, m->y2, m->step2_cls_weight,
                         m->step2_gen_weight, m->dfake);
    if (m->step2_gen_weight != 0.0f)
        gen_backward(&m->gen, m->params, m->grads, &m->gen_acts, m->dfake, m->ws);
    return ce;
}

// ---------------------------------------------------------------- updates

UpdatePlan cagnet_plan_step1(const CagNet* m, long it) {
    const Config* c = m->cfg;
    float gamma = (float)config_get_float(c, "optim.decay_gamma");
    UpdatePlan p = {0};
    p.lr_e = lr_poly((float)config_get_float(c, "optim.lr"), it,
                     config_get_int(c, "schedule.step1_iters"),
                     (float)config_get_float(c, "optim.poly_power"));
    p.lr_d = lr_step((float)config_get_float(c, "optim.d_lr"), it,
                     config_get_int(c, "optim.d_decay_start"),
                     config_get_int(c, "optim.d_decay_every"), gamma);
    p.lr_g = lr_step((float)config_get_float(c, "optim.g_lr"), it,
                     config_get_int(c, "optim.g_decay_start"),
                     config_get_int(c, "optim.g_decay_every"), gamma);
    p.update_e = p.update_d = p.update_g = 1;
    return p;
}

UpdatePlan cagnet_plan_step2(const CagNet* m, long it) {
    const Config* c = m->cfg;
    UpdatePlan p = {0};
    p.lr_d = p.lr_g = lr_step((float)config_get_float(c, "optim.mixed_lr"), it,
                              config_get_int(c, "optim.mixed_decay_start"),
                              config_get_int(c, "optim.mixed_decay_every"),
                              (float)config_get_float(c, "optim.mixed_decay_gamma"));
    p.update_d = 1;
    p.update_g = m->step2_gen_weight != 0.0f;
    return p;
}

void cagnet_apply(CagNet* m, const UpdatePlan* p) {
    if (p->update_d) optimizer_step(&m->opt_d, m->params, m->grads, p->lr_d);
    if (p->update_e) optimizer_step(&m->opt_e, m->params, m->grads, p->lr_e);
    if (p->update_g) optimizer_step(&m->opt_g, m->params, m->grads, p->lr_g);
}
