// Counted work of the CaGNet steps; see flops.h. Each function mirrors the
// calls of the step it counts (cagnet.c, backbone.c, disc_cls.c, generator.c).
#include "flops.h"

#include <math.h>
#include <string.h>

#include "pool.h"

// Forward FLOPs of convolution d on a (B, C_in, H, W) input; *n (when not
// NULL) gets the output's element count.
static double conv_flops(const Conv2dDesc* d, int B, int H, int W, double* n) {
    int Ho = conv2d_out_size(H, d->kh, d->stride, d->pad, d->dilation);
    int Wo = conv2d_out_size(W, d->kw, d->stride, d->pad, d->dilation);
    double out = (double)B * d->C_out * Ho * Wo;
    if (n) *n = out;
    return 2.0 * out * d->C_in * d->kh * d->kw;
}

static double layer_flops(const ConvLayer* l, int B, int H, int W) {
    return conv_flops(&l->d, B, H, W, NULL);
}

// ---------------------------------------------------------------- backbone

typedef struct {
    double fwd, bwd;              // FLOPs
    double bytes_fwd, bytes_bwd;  // element-wise passes
    int Hf, Wf;                   // feature size
} BackboneCount;

// A conv + frozen BN (+ ReLU) with a data and a filter gradient.
static void count_convbn(BackboneCount* c, const ConvBn* u, int B, int H, int W) {
    double n;
    double f = conv_flops(&u->d, B, H, W, &n);
    c->fwd += f;
    c->bwd += 2.0 * f;
    c->bytes_fwd += 8.0 * n;
    c->bytes_bwd += (u->relu ? 12.0 : 8.0) * n;
}

static void count_backbone(BackboneCount* c, const Backbone* bb, int B, int H, int W) {
    memset(c, 0, sizeof *c);
    const Conv2dDesc* sd = &bb->stem.d;
    double n_stem;
    c->fwd = conv_flops(sd, B, H, W, &n_stem);
    c->bwd = c->fwd;  // filter gradient only: the image gets none
    int Hs = conv2d_out_size(H, sd->kh, sd->stride, sd->pad, sd->dilation);
    int Ws = conv2d_out_size(W, sd->kw, sd->stride, sd->pad, sd->dilation);
    // backbone.c's stem max pool: 3x3, stride 2, pad 1, ceil mode
    int h = maxpool2d_out_size(Hs, 3, 2, 1, 1), w = maxpool2d_out_size(Ws, 3, 2, 1, 1);
    double n_pool = (double)B * sd->C_out * h * w;
    c->bytes_fwd = 8.0 * n_stem + 4.0 * (n_stem + 2.0 * n_pool);
    c->bytes_bwd = 12.0 * n_pool + 4.0 * (2.0 * n_pool + n_stem);
    for (int k = 0; k < bb->n_blocks; k++) {
        const Bottleneck* b = &bb->blocks[k];
        const Conv2dDesc* rd = &b->reduce.d;
        int ho = conv2d_out_size(h, rd->kh, rd->stride, rd->pad, rd->dilation);
        int wo = conv2d_out_size(w, rd->kw, rd->stride, rd->pad, rd->dilation);
        count_convbn(c, &b->reduce, B, h, w);
        count_convbn(c, &b->conv3x3, B, ho, wo);
        count_convbn(c, &b->increase, B, ho, wo);
        if (b->has_shortcut) count_convbn(c, &b->shortcut, B, h, w);
        double n_out = (double)B * b->increase.d.C_out * ho * wo;
        c->bytes_fwd += 12.0 * n_out;
        c->bytes_bwd += 12.0 * n_out;
        h = ho, w = wo;
    }
    for (int i = 0; i < bb->cfg.n_aspp; i++) {
        double f = layer_flops(&bb->aspp[i], B, h, w);
        c->fwd += f;
        c->bwd += 2.0 * f;
    }
    c->Hf = h, c->Wf = w;
}

// ---------------------------------------------------------------- heads

static double cm_forward_flops(const Cm* cm, int B, int H, int W) {
    double f = layer_flops(&cm->selector, B, H, W) + layer_flops(&cm->fuse, B, H, W) +
               layer_flops(&cm->mu, B, H, W) + layer_flops(&cm->logvar, B, H, W);
    for (int k = 0; k < cm->cfg.n; k++) f += layer_flops(&cm->conv[k], B, H, W);
    return f;
}

static double gen_forward_flops(const Gen* g, int B, int H, int W) {
    double f = 0.0;
    for (int i = 0; i <= g->cfg.n_hidden; i++) f += layer_flops(&g->fc[i], B, H, W);
    return f;
}

// gen_backward: every layer's filter gradient, the data gradient of all but fc1.
static double gen_backward_flops(const Gen* g, int B, int H, int W) {
    return 2.0 * gen_forward_flops(g, B, H, W) - layer_flops(&g->fc[0], B, H, W);
}

static double dc_forward_flops(const Dc* dc, int B, int H, int W) {
    return layer_flops(&dc->trunk, B, H, W) + layer_flops(&dc->gan, B, H, W) +
           layer_flops(&dc->cls, B, H, W);
}

// One dc_backward call with upstream gradients on the GAN and/or class head:
// the heads form their data gradient always and filter gradients with grads;
// the trunk forms its filter gradient with grads and its data gradient with dx.
static double dc_backward_flops(const Dc* dc, int B, int H, int W, int gan, int cls, int grads,
                                int dx) {
    double per = grads ? 2.0 : 1.0;
    double f = 0.0;
    if (gan) f += per * layer_flops(&dc->gan, B, H, W);
    if (cls) f += per * layer_flops(&dc->cls, B, H, W);
    return f + ((grads ? 1.0 : 0.0) + (dx ? 1.0 : 0.0)) * layer_flops(&dc->trunk, B, H, W);
}

// ce_output of cagnet.c: the D-side backward into the parameters (scale_d
// != 0), the E-side one into dx (scale_e != 0).
static double ce_backward_flops(const Dc* dc, int B, int H, int W, float scale_d, float scale_e) {
    double f = 0.0;
    if (scale_d != 0.0f) f += dc_backward_flops(dc, B, H, W, 0, 1, 1, 0);
    if (scale_e != 0.0f) f += dc_backward_flops(dc, B, H, W, 0, 1, 0, 1);
    return f;
}

// ---------------------------------------------------------------- steps

void flops_cagnet(StepFlops* f, const CagNet* m, const Step1Mode* mode, int B, int H, int W) {
    memset(f, 0, sizeof *f);
    Step1Mode md = mode ? *mode : (Step1Mode){m->real_ce_weight, m->fake_ce_weight, 1};
    int n_out = m->n_scales > 1 ? m->n_scales + 1 : 1;
    float wd = md.real_ce_weight / n_out, we = md.train_e ? m->backbone_ce_weight / n_out : 0.0f;
    const Dc* dc = &m->dc;
    int h0 = 0, w0 = 0;
    for (int j = 0; j < m->n_scales; j++) {  // E+CM, C on x of the scale
        BackboneCount bc;
        count_backbone(&bc, &m->bb, B, j ? (int)floor(H * m->scales[j]) : H,
                       j ? (int)floor(W * m->scales[j]) : W);
        if (!j) h0 = bc.Hf, w0 = bc.Wf;
        double cm = cm_forward_flops(&m->cm, B, bc.Hf, bc.Wf);
        f->backbone_fwd += bc.fwd;
        f->backbone_bytes += bc.bytes_fwd;
        f->heads_fwd += cm + dc_forward_flops(dc, B, bc.Hf, bc.Wf);
        f->heads_bwd += ce_backward_flops(dc, B, bc.Hf, bc.Wf, wd, we);
        if (md.train_e) {
            f->backbone_bwd += bc.bwd;
            f->backbone_bytes += bc.bytes_bwd;
            f->heads_bwd += 2.0 * cm;  // CM: data and filter gradients of every conv
        }
    }
    // at scale 0's feature size: G, D/C on fake (and on x_max)
    f->heads_fwd += gen_forward_flops(&m->gen, B, h0, w0) + dc_forward_flops(dc, B, h0, w0);
    if (m->n_scales > 1) {
        f->heads_fwd += dc_forward_flops(dc, B, h0, w0);
        f->heads_bwd += ce_backward_flops(dc, B, h0, w0, wd, we);
    }
    // D: GAN on real and on fake, CE on fake; G: GAN into dfake, then G
    f->heads_bwd += 2.0 * dc_backward_flops(dc, B, h0, w0, 1, 0, 1, 0) +
                    ce_backward_flops(dc, B, h0, w0, md.fake_ce_weight, 0.0f) +
                    dc_backward_flops(dc, B, h0, w0, 1, 0, 0, 1) +
                    gen_backward_flops(&m->gen, B, h0, w0);

    f->step2 = gen_forward_flops(&m->gen, B, h0, w0) + dc_forward_flops(dc, B, h0, w0) +
               ce_backward_flops(dc, B, h0, w0, m->step2_cls_weight, m->step2_gen_weight);
    if (m->step2_gen_weight != 0.0f) f->step2 += gen_backward_flops(&m->gen, B, h0, w0);
}

double flops_step1(const StepFlops* f) {
    return f->backbone_fwd + f->backbone_bwd + f->heads_fwd + f->heads_bwd;
}

void flops_print(FILE* fp, const StepFlops* f) {
    const struct {
        const char* name;
        double v;
    } rows[] = {{"step1.backbone_fwd", f->backbone_fwd}, {"step1.backbone_bwd", f->backbone_bwd},
                {"step1.heads_fwd", f->heads_fwd},       {"step1.heads_bwd", f->heads_bwd},
                {"step1.total", flops_step1(f)},         {"step2.total", f->step2}};
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
        fprintf(fp, "flops %-20s %.0f (%.3f GFLOP)\n", rows[i].name, rows[i].v, rows[i].v / 1e9);
    fprintf(fp, "bytes %-20s %.0f (%.3f GB, backbone BN/ReLU/add/pool passes)\n",
            "step1.elementwise", f->backbone_bytes, f->backbone_bytes / 1e9);
}
