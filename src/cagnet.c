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
    AdamConfig adam = {(float)config_get_float(cfg, "optim.adam_beta1"),
                       (float)config_get_float(cfg, "optim.adam_beta2"), 1e-8f};
    SgdConfig sgd = {(float)config_get_float(cfg, "optim.momentum")};
    if (config_is(cfg, "optim.e_optimizer", "adam"))
        optimizer_init_adam(&m->opt_e, adam, g, n, pt->total);
    else
        optimizer_init_sgd(&m->opt_e, sgd, g, n, pt->total);
    free(g);
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
        s->w = falloc((size_t)B * s->Hf * s->Wf);
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

// Everything alloc_acts allocated (and the MMD rows grown for its batch).
static void free_acts(CagNet* m) {
    for (int j = 0; j < m->n_scales; j++) {
        CagScale* s = &m->sc[j];
        backbone_acts_free(&s->bb);
        cm_acts_free(&s->cm);
        dc_acts_free(&s->dc);
        free(s->img), free(s->lbl), free(s->w), free(s->dx), free(s->dh), free(s->x_up);
        memset(s, 0, sizeof *s);
    }
    if (m->n_scales > 1) dc_acts_free(&m->dc_max);
    free(m->x_max), free(m->dx_max), free(m->which);
    gen_acts_free(&m->gen_acts);
    dc_acts_free(&m->dc_fake);
    free(m->emap), free(m->latent), free(m->y2), free(m->dfake), free(m->dgan), free(m->dcls);
    free(m->valid), free(m->cls_start), free(m->cls_fill), free(m->cls_pos), free(m->rows), free(m->ws);
    m->x_max = m->dx_max = m->emap = m->latent = m->dfake = m->dgan = m->dcls = m->rows = NULL;
    m->which = m->y2 = m->valid = NULL;
    m->rows_n = 0;
}

void cagnet_set_batch(CagNet* m, int B) {
    if (B == m->B) return;
    int H = m->H, W = m->W;
    free_acts(m);
    alloc_acts(m, B, H, W);
}

void cagnet_free(CagNet* m) {
    free_acts(m);
    cagnet_set_dist(m, NULL);
    optimizer_free(&m->opt_e);
    optimizer_free(&m->opt_d);
    optimizer_free(&m->opt_g);
    backbone_free(&m->bb);
    param_table_free(&m->pt);
    free(m->params), free(m->grads), free(m->emb), free(m->class_cum), free(m->mmd_sigmas);
    memset(m, 0, sizeof *m);
}

void cagnet_set_dist(CagNet* m, Dist* d) {
    free(m->cls_all), free(m->cls_gstart), free(m->cls_mine), free(m->gather_n);
    m->cls_all = m->cls_gstart = m->cls_mine = NULL;
    m->gather_n = NULL;
    m->dist = d;
    if (!d) return;
    m->cls_all = callocCheck((size_t)d->world * m->K, sizeof(int));
    m->cls_gstart = callocCheck((size_t)m->K + 1, sizeof(int));
    m->cls_mine = callocCheck((size_t)m->K, sizeof(int));
    m->gather_n = callocCheck((size_t)d->world, sizeof(size_t));
}

// ---------------------------------------------------------------- pieces

// Several ranks: the steps talk to each other. One rank behaves as none.
static int multi_rank(const CagNet* m) { return m->dist && m->dist->world > 1; }

// ratio[i] = local[i] / (sum over ranks of local[i]), 0 where the sum is 0:
// the factor that turns a mean over this rank's elements into its share of
// the mean over the global batch. Exactly 1 (or 0) in a single process.
void cagnet_share_ratios(const CagNet* m, const double* local, float* ratio, int n) {
    double global[2 * CAGNET_MAX_SCALES];
    memcpy(global, local, (size_t)n * sizeof(double));
    if (multi_rank(m)) dist_allreduce_doubles(m->dist, global, n);
    for (int i = 0; i < n; i++) ratio[i] = global[i] > 0.0 ? (float)(local[i] / global[i]) : 0.0f;
}

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

// Valid (label != 255) pixels of lbl; v (n) gets the mask when non-NULL.
static double count_valid(uint8_t* v, const uint8_t* lbl, size_t n) {
    size_t cnt = 0;
    for (size_t i = 0; i < n; i++) {
        cnt += lbl[i] != 255;
        if (v) v[i] = lbl[i] != 255;
    }
    return (double)cnt;
}

// Σ w over the valid pixels: the weighted CE's normaliser.
static double sum_valid_weights(const uint8_t* lbl, const float* w, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        if (lbl[i] != 255) s += w[i];
    return s;
}

void cagnet_resize_targets(CagNet* m, const uint8_t* labels, const float* weights) {
    for (int j = 0; j < m->n_scales; j++) {
        CagScale* s = &m->sc[j];
        resize_nearest_labels(s->lbl, labels, m->B, m->H, m->W, s->Hf, s->Wf);
        if (weights) resize_nearest(s->w, weights, sizeof(float), m->B, m->H, m->W, s->Hf, s->Wf);
    }
}

int cagnet_count_targets(CagNet* m, int weighted, double* cnt) {
    int S = m->n_scales;
    for (int j = 0; j < S; j++) {
        const CagScale* s = &m->sc[j];
        size_t n = (size_t)m->B * s->Hf * s->Wf;
        cnt[j] = count_valid(j ? NULL : m->valid, s->lbl, n);
        if (weighted) cnt[S + j] = sum_valid_weights(s->lbl, s->w, n);
    }
    return weighted ? 2 * S : S;
}

// CE of one C output, weighted per pixel by w (NULL: a plain mean) (this
// rank's share: ratio of the normaliser, see share_ratios), and (when
// dst_grads or dx wanted) its gradient pushed through C with the given
// scales. Two scales because D's and E's losses weight the same CE
// differently.
static float ce_output(CagNet* m, const DcActs* a, const float* x, const uint8_t* lbl,
                       const float* w, float ratio, float scale_d, float scale_e, float* dx) {
    size_t n = (size_t)a->B * m->K * a->H * a->W;
    int HW = a->H * a->W;
    memset(m->dcls, 0, n * sizeof(float));
    float loss = ratio * softmax_ce_forward_backward(m->dcls, a->cls, lbl, w, a->B, m->K, HW,
                                                     ratio);
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

// Several ranks: every rank's per-class valid counts (cls_all), the global
// first row of each class (cls_gstart, rows in the order class, rank, raster)
// and of this rank's pixels of each class (cls_mine), and each rank's gather
// size (2 P_r D floats: its X rows, then its Y rows). Returns the global rows.
int cagnet_gather_layout(CagNet* m, const int* start) {
    int K = m->K, R = m->dist->world, me = m->dist->rank;
    int *all = m->cls_all, *gs = m->cls_gstart;
    for (int c = 0; c < K; c++) all[(size_t)me * K + c] = start[c + 1] - start[c];
    dist_allgather_ints(m->dist, all, K);
    gs[0] = 0;
    for (int c = 0; c < K; c++) {
        int acc = gs[c];
        for (int r = 0; r < R; r++) {
            if (r == me) m->cls_mine[c] = acc;
            acc += all[(size_t)r * K + c];
        }
        gs[c + 1] = acc;
    }
    for (int r = 0; r < R; r++) {
        size_t Pr = 0;
        for (int c = 0; c < K; c++) Pr += (size_t)all[(size_t)r * K + c];
        m->gather_n[r] = 2 * Pr * m->D;
    }
    return gs[K];
}

// The gathered blocks S (rank by rank: X rows, then Y rows, each by class)
// regrouped into X and Y by class, ranks in order within a class.
void cagnet_regroup_rows(CagNet* m, float* X, float* Y, const float* S) {
    int K = m->K, D = m->D;
    int* next = m->cls_fill;  // next free row of each class
    memcpy(next, m->cls_gstart, (size_t)K * sizeof(int));
    for (int r = 0; r < m->dist->world; r++) {
        const int* cnt = m->cls_all + (size_t)r * K;
        const float* xs = S;
        const float* ys = S + m->gather_n[r] / 2;
        for (int c = 0; c < K; c++) {
            size_t n = (size_t)cnt[c] * D;
            memcpy(X + (size_t)next[c] * D, xs, n * sizeof(float));
            memcpy(Y + (size_t)next[c] * D, ys, n * sizeof(float));
            xs += n, ys += n;
            next[c] += cnt[c];
        }
        S += m->gather_n[r];
    }
}

int cagnet_sort_by_class(CagNet* m, const uint8_t* lbl) {
    int K = m->K, n = m->B * m->sc[0].Hf * m->sc[0].Wf;
    int *start = m->cls_start, *pos = m->cls_pos, *fill = m->cls_fill;
    memset(start, 0, ((size_t)K + 1) * sizeof(int));
    for (int i = 0; i < n; i++)
        if (lbl[i] != 255) start[lbl[i] + 1]++;
    for (int c = 0; c < K; c++) start[c + 1] += start[c];
    memcpy(fill, start, (size_t)K * sizeof(int));
    for (int i = 0; i < n; i++)
        if (lbl[i] != 255) pos[fill[lbl[i]]++] = i;
    return start[K];
}

// CaGNet's MMD content loss (contract §3), gradient (scaled) into dfake.
// Valid pixels sorted by class, raster order within. Several ranks: every
// rank gathers all ranks' rows in the order (class, rank, raster), which is
// the single-process order (class, global sample, pixel) when rank r holds
// the r-th slice of the batch (any order gives the same MMD up to rounding);
// each rank then computes the whole MMD (redundant, but small next to the
// backbone) and keeps the gradient rows of its own pixels. The returned loss
// is the global one on every rank.
static float content_mmd(CagNet* m, const float* fake, const float* real, const uint8_t* lbl,
                         float scale) {
    int D = m->D, K = m->K, HW = m->sc[0].Hf * m->sc[0].Wf;
    int *start = m->cls_start, *pos = m->cls_pos;
    int P = cagnet_sort_by_class(m, lbl);

    int multi = multi_rank(m);
    int Pg = multi ? cagnet_gather_layout(m, start) : P;
    // no valid pixel in the global batch (every rank sees the same Pg): nothing
    // to match, and the row buffer may never have been allocated
    if (Pg == 0) return 0.0f;
    const int* gstart = multi ? m->cls_gstart : start;  // rows of each class in X, Y
    const int* mine = multi ? m->cls_mine : start;      // first row of this rank's pixels
    size_t PD = (size_t)Pg * D, ws_n = mmd_grouped_workspace_floats(gstart, gstart, K);
    // X, Y, then dX and the workspace; several ranks gather into the dX area first
    size_t need = 2 * PD + max_sz(multi ? 2 * PD : 0, PD + ws_n);
    if (need > m->rows_n) {  // grows to the largest batch seen, then stays
        free(m->rows);
        m->rows = falloc(need);
        m->rows_n = need;
    }
    float *X = m->rows, *Y = X + PD, *dX = Y + PD, *ws = dX + PD;
    float* Xs = X;  // this rank's X rows, then its Y rows
    if (multi) {
        Xs = dX;
        for (int r = 0; r < m->dist->rank; r++) Xs += m->gather_n[r];
    }
    float* Ys = Xs + (size_t)P * D;
#pragma omp parallel for
    for (int r = 0; r < P; r++) {
        int b = pos[r] / HW, p = pos[r] % HW;
        for (int d = 0; d < D; d++) {
            size_t src = ((size_t)b * D + d) * HW + p;
            Xs[(size_t)r * D + d] = fake[src];
            Ys[(size_t)r * D + d] = real[src];
        }
    }
    if (multi) {
        dist_allgather_floats(m->dist, dX, m->gather_n);
        cagnet_regroup_rows(m, X, Y, dX);
    }
    memset(dX, 0, PD * sizeof(float));
    float loss = mmd_grouped_forward_backward(dX, X, Y, gstart, gstart, K, D, m->mmd_sigmas,
                                              m->n_sigmas, ws, scale);
#pragma omp parallel for
    for (int r = 0; r < P; r++) {
        int b = pos[r] / HW, p = pos[r] % HW, c = lbl[pos[r]];
        const float* g = dX + (size_t)(mine[c] + r - start[c]) * D;
        for (int d = 0; d < D; d++) m->dfake[((size_t)b * D + d) * HW + p] += g[d];
    }
    return loss;
}

// Content loss between fake and real (detached) features over valid pixels,
// gradient (scaled) into dfake; ratio: this rank's share of the l2 mean (the
// MMD gathers instead).
static float content_loss(CagNet* m, const float* fake, const float* real, const uint8_t* lbl,
                          const uint8_t* valid, float ratio, float scale) {
    // (valid == lbl != 255: the MSE takes the mask, MMD groups by label)
    if (m->content_mmd) return content_mmd(m, fake, real, lbl, scale);
    int HW = m->sc[0].Hf * m->sc[0].Wf;
    return ratio * mse_forward_backward(m->dfake, fake, real, valid, m->B, m->D, HW,
                                        scale * ratio);
}

// ---------------------------------------------------------------- step1

// E+CM at every scale and the MSC fusion.
static void encode(CagNet* m, const float* img, const StepRng* rng) {
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

// E set, backward: KL at scale 0 (its gradient scaled by ratio r0, like the
// other means), x_max's gradient routed to the winning scale, then CM and the
// backbone at each scale from the dx the CEs left. Returns this rank's KL.
static float encoder_backward(CagNet* m, float r0) {
    int B = m->B, D = m->D;
    CagScale* s0 = &m->sc[0];
    int HW = s0->Hf * s0->Wf;
    size_t n0 = (size_t)B * D * HW;
    // KL gradients in buffers step1 is done with: dfake (G has used it) and
    // latent (only step2 uses it)
    float* dmu = m->dfake;
    float* dlv = m->latent;
    memset(dmu, 0, n0 * sizeof(float));
    memset(dlv, 0, n0 * sizeof(float));
    float kl = r0 * kl_forward_backward(dmu, dlv, s0->cm.mu, s0->cm.logvar, m->valid, B, D, HW,
                                        m->kl_weight * r0);
    if (m->n_scales > 1) {
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
    return kl;
}

// This rank's shares of the loss components summed over ranks: the global
// values (the MMD content loss is global already).
void cagnet_sum_losses(const CagNet* m, Step1Losses* L) {
    if (!multi_rank(m)) return;
    double v[8] = {L->d_gan_real, L->d_gan_fake, L->d_ce_real, L->d_ce_fake,
                   L->e_ce,       L->kl,         L->g_gan,     m->content_mmd ? 0.0 : L->g_content};
    dist_allreduce_doubles(m->dist, v, 8);
    L->d_gan_real = (float)v[0], L->d_gan_fake = (float)v[1];
    L->d_ce_real = (float)v[2], L->d_ce_fake = (float)v[3];
    L->e_ce = (float)v[4], L->kl = (float)v[5], L->g_gan = (float)v[6];
    if (!m->content_mmd) L->g_content = (float)v[7];
}

void cagnet_step1(CagNet* m, const float* img, const uint8_t* labels, const float* weights,
                  const StepRng* rng, const Step1Mode* mode, Step1Losses* out) {
    Step1Mode md = mode ? *mode : (Step1Mode){m->real_ce_weight, m->fake_ce_weight, 1};
    int B = m->B, D = m->D;
    CagScale* s0 = &m->sc[0];
    int HW = s0->Hf * s0->Wf;
    size_t n0 = (size_t)B * D * HW;
    memset(m->grads, 0, m->pt.total * sizeof(float));
    cagnet_resize_targets(m, labels, weights);
    encode(m, img, rng);

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

    // every mean's share of the global batch: r[j] for the labels of scale j
    // (GAN, KL and l2 content are over scale 0's valid pixels too); the real
    // CEs' rc[j] of their Σ w when weighted
    uint8_t* valid = m->valid;
    double cnt[2 * CAGNET_MAX_SCALES];
    float r[2 * CAGNET_MAX_SCALES];
    cagnet_share_ratios(m, cnt, r, cagnet_count_targets(m, weights != NULL, cnt));
    const float* rc = weights ? r + m->n_scales : r;
    Step1Losses L = {0};

    // D set: GAN real/fake; CE_msc on real outputs (the E set's CE reuses the
    // same C outputs with its own weight, pushed into dx instead of params)
    memset(m->dgan, 0, (size_t)B * HW * sizeof(float));
    L.d_gan_real = r[0] * gan_loss_forward_backward(m->dgan, s0->dc.gan, valid, m->gan_kind, 1.0f,
                                                    (size_t)B * HW, r[0]);
    dc_backward(&m->dc, m->params, m->grads, &s0->dc, s0->cm.x, m->dgan, NULL, NULL, m->ws);
    int n_out = m->n_scales > 1 ? m->n_scales + 1 : 1;
    float wd = md.real_ce_weight / n_out, we = md.train_e ? m->backbone_ce_weight / n_out : 0.0f;
    if (md.train_e)
        for (int j = 0; j < m->n_scales; j++)
            memset(m->sc[j].dx, 0, (size_t)B * D * m->sc[j].Hf * m->sc[j].Wf * sizeof(float));
    float ce = 0.0f;
    for (int j = 0; j < m->n_scales; j++) {
        CagScale* s = &m->sc[j];
        ce += ce_output(m, &s->dc, s->cm.x, s->lbl, weights ? s->w : NULL, rc[j], wd, we, s->dx);
    }
    if (m->n_scales > 1) {
        if (md.train_e) memset(m->dx_max, 0, n0 * sizeof(float));
        ce += ce_output(m, &m->dc_max, m->x_max, s0->lbl, weights ? s0->w : NULL, rc[0], wd, we,
                        m->dx_max);
    }
    L.d_ce_real = L.e_ce = ce / n_out;

    memset(m->dgan, 0, (size_t)B * HW * sizeof(float));
    L.d_gan_fake = r[0] * gan_loss_forward_backward(m->dgan, m->dc_fake.gan, valid, m->gan_kind,
                                                    0.0f, (size_t)B * HW, r[0]);
    dc_backward(&m->dc, m->params, m->grads, &m->dc_fake, fake, m->dgan, NULL, NULL, m->ws);
    L.d_ce_fake =
        ce_output(m, &m->dc_fake, fake, s0->lbl, NULL, r[0], md.fake_ce_weight, 0.0f, NULL);

    // G set: fool D, match the real features (detached)
    memset(m->dgan, 0, (size_t)B * HW * sizeof(float));
    memset(m->dfake, 0, n0 * sizeof(float));
    L.g_gan = r[0] * gan_loss_forward_backward(m->dgan, m->dc_fake.gan, valid, m->gan_kind, 1.0f,
                                               (size_t)B * HW, m->gan_weight * r[0]);
    dc_backward(&m->dc, m->params, NULL, &m->dc_fake, fake, m->dgan, NULL, m->dfake, m->ws);
    L.g_content = content_loss(m, fake, s0->cm.x, s0->lbl, valid, r[0], m->content_weight);
    gen_backward(&m->gen, m->params, m->grads, &m->gen_acts, m->dfake, m->ws);

    // E set: CE through C (above) plus KL; with E frozen only KL's value
    if (md.train_e)
        L.kl = encoder_backward(m, r[0]);
    else
        L.kl = r[0] * kl_forward_backward(NULL, NULL, s0->cm.mu, s0->cm.logvar, valid, B, D, HW,
                                          1.0f);

    cagnet_sum_losses(m, &L);
    L.loss_d = L.d_gan_real + L.d_gan_fake + md.real_ce_weight * L.d_ce_real +
               md.fake_ce_weight * L.d_ce_fake;
    L.loss_e = m->backbone_ce_weight * L.e_ce + m->kl_weight * L.kl;
    L.loss_g = m->gan_weight * L.g_gan + m->content_weight * L.g_content;
    *out = L;
}

Step1Mode cagnet_mode_mixed(const CagNet* m) {
    return (Step1Mode){(float)config_get_float(m->cfg, "loss.mixed_real_ce_weight"),
                       (float)config_get_float(m->cfg, "loss.mixed_fake_ce_weight"), 0};
}

// ---------------------------------------------------------------- step2

void cagnet_draw_step2_labels(CagNet* m, const StepRng* rng) {
    int B = m->B, HW = m->sc[0].Hf * m->sc[0].Wf;
    uint32_t total = m->class_cum[m->K - 1];
#pragma omp parallel for
    for (int b = 0; b < B; b++) {
        uint64_t cs = rng_stream(RNG_CLASS_DRAW, (uint64_t)rng->iter, (uint64_t)(rng->sample0 + b));
        for (int p = 0; p < HW; p++) {
            uint32_t u = rng_uint_below(rng->seed, cs, (uint64_t)p, total);
            int c = 0;
            while (m->class_cum[c] <= u) c++;
            m->y2[(size_t)b * HW + p] = (uint8_t)c;
        }
    }
}

float cagnet_step2(CagNet* m, const StepRng* rng) {
    int B = m->B, D = m->D;
    int HW = m->sc[0].Hf * m->sc[0].Wf;
    memset(m->grads, 0, m->pt.total * sizeof(float));
    cagnet_draw_step2_labels(m, rng);
#pragma omp parallel for
    for (int b = 0; b < B; b++)
        rng_fill_normal(m->latent + (size_t)b * D * HW, (size_t)D * HW, rng->seed,
                        rng_stream(RNG_LATENT, (uint64_t)rng->iter, (uint64_t)(rng->sample0 + b)),
                        0);
    embed_labels(m, m->emap, m->y2, B, HW);
    gen_forward(&m->gen, m->params, &m->gen_acts, m->emap, m->latent, rng, m->ws);
    dc_forward(&m->dc, m->params, &m->dc_fake, m->gen_acts.fake, DC_ID_REAL, rng, m->ws);
    memset(m->dfake, 0, (size_t)B * D * HW * sizeof(float));
    double cnt = (double)B * HW;  // every drawn label counts
    float r;
    cagnet_share_ratios(m, &cnt, &r, 1);
    float ce = ce_output(m, &m->dc_fake, m->gen_acts.fake, m->y2, NULL, r,
                         m->step2_cls_weight, m->step2_gen_weight, m->dfake);
    if (m->step2_gen_weight != 0.0f)
        gen_backward(&m->gen, m->params, m->grads, &m->gen_acts, m->dfake, m->ws);
    if (!multi_rank(m)) return ce;
    double sum = ce;
    dist_allreduce_doubles(m->dist, &sum, 1);
    return (float)sum;
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

// D and G learning rate of the mixed stages.
static float mixed_lr(const CagNet* m, long it) {
    const Config* c = m->cfg;
    return lr_step((float)config_get_float(c, "optim.mixed_lr"), it,
                   config_get_int(c, "optim.mixed_decay_start"),
                   config_get_int(c, "optim.mixed_decay_every"),
                   (float)config_get_float(c, "optim.mixed_decay_gamma"));
}

UpdatePlan cagnet_plan_step2(const CagNet* m, long it) {
    UpdatePlan p = {0};
    p.lr_d = p.lr_g = mixed_lr(m, it);
    p.update_d = 1;
    p.update_g = m->step2_gen_weight != 0.0f;
    return p;
}

UpdatePlan cagnet_plan_mixed_step1(const CagNet* m, long it_in_stage) {
    UpdatePlan p = {0};
    p.lr_d = p.lr_g = mixed_lr(m, it_in_stage);
    p.update_d = p.update_g = 1;
    return p;
}

UpdatePlan cagnet_plan_st(const CagNet* m, long it_in_stage) {
    const Config* c = m->cfg;
    UpdatePlan p = {0};
    p.lr_e = lr_poly((float)config_get_float(c, "selftrain.lr"), it_in_stage,
                     config_get_int(c, "schedule.st_iters"),
                     (float)config_get_float(c, "optim.poly_power"));
    p.lr_d = p.lr_g = mixed_lr(m, it_in_stage);
    p.update_e = p.update_d = p.update_g = 1;
    return p;
}

void cagnet_apply(CagNet* m, const UpdatePlan* p) {
    if (p->update_d) optimizer_step(&m->opt_d, m->params, m->grads, p->lr_d);
    if (p->update_e) optimizer_step(&m->opt_e, m->params, m->grads, p->lr_e);
    if (p->update_g) optimizer_step(&m->opt_g, m->params, m->grads, p->lr_g);
}

int cagnet_update_ranges(const CagNet* m, const UpdatePlan* p, size_t* offsets, size_t* counts) {
    // regions lie in enum order (param_table_finalize), so E < D < G
    const ParamTable* pt = &m->pt;
    size_t lo[3] = {pt->region_lo[REGION_BACKBONE], pt->region_lo[REGION_DC],
                    pt->region_lo[REGION_GEN]};
    size_t hi[3] = {pt->region_lo[REGION_CM] + pt->region_n[REGION_CM],
                    lo[1] + pt->region_n[REGION_DC], lo[2] + pt->region_n[REGION_GEN]};
    int on[3] = {p->update_e, p->update_d, p->update_g};
    int n = 0;
    for (int i = 0; i < 3; i++) {
        if (!on[i] || hi[i] == lo[i]) continue;
        if (n && offsets[n - 1] + counts[n - 1] == lo[i]) {
            counts[n - 1] += hi[i] - lo[i];
        } else {
            offsets[n] = lo[i];
            counts[n++] = hi[i] - lo[i];
        }
    }
    return n;
}
