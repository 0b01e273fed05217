// Eval-mode CaGNet forward and argmax; see infer.h.
#include "infer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "device_backend.h"
#include "hd_math.h"
#include "resize.h"
#include "tensor_ops.h"

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }
static float* falloc(size_t n) { return callocCheck(n ? n : 1, sizeof(float)); }

void cag_infer_layout(CagInfer* a, const CagNet* m, int B, int H, int W) {
    memset(a, 0, sizeof *a);
    a->B = B, a->H = H, a->W = W;
    a->K = m->K, a->D = m->D;
    a->n_scales = m->n_scales;
    size_t ws = 0;
    for (int j = 0; j < m->n_scales; j++) {
        InferScale* s = &a->sc[j];
        s->H = j ? (int)floor(H * m->scales[j]) : H;
        s->W = j ? (int)floor(W * m->scales[j]) : W;
        int hf, wf;
        backbone_feature_size(&m->bb, s->H, s->W, &hf, &wf);
        if (j == 0) a->Hf = hf, a->Wf = wf;
        ws = max_sz(ws, backbone_workspace_floats(&m->bb, B, s->H, s->W));
        ws = max_sz(ws, cm_workspace_floats(&m->cm, B, hf, wf));
    }
    a->ws_n = max_sz(ws, dc_workspace_floats(&m->dc, B, a->Hf, a->Wf));
}

void cag_infer_init(CagInfer* a, const CagNet* m, int B, int H, int W) {
    cag_infer_layout(a, m, B, H, W);
    const DeviceRun* dv = device_run_active();
    if (dv && dv->g && dv->be->infer) {
        a->dv = dv;
        a->logits = falloc((size_t)B * m->K * a->Hf * a->Wf);
        return;
    }
    for (int j = 0; j < m->n_scales; j++) {
        InferScale* s = &a->sc[j];
        backbone_acts_alloc(&s->bb, &m->bb, B, s->H, s->W);
        s->img = j ? falloc((size_t)B * 3 * s->H * s->W) : NULL;
        cm_acts_alloc(&s->cm, &m->cm, B, s->bb.Hf, s->bb.Wf);
    }
    size_t n0 = (size_t)B * m->D * a->Hf * a->Wf;
    if (m->n_scales > 1) {
        for (int j = 1; j < m->n_scales; j++) a->sc[j].x_up = falloc(n0);
        a->x_max = falloc(n0);
        a->which = callocCheck(n0, 1);
    }
    dc_acts_alloc(&a->dc, &m->dc, B, a->Hf, a->Wf);
    a->in = falloc((size_t)B * 3 * H * W);
    a->ws = falloc(a->ws_n);
}

void cag_infer_free(CagInfer* a) {
    free(a->logits);
    for (int j = 0; j < a->n_scales; j++) {
        InferScale* s = &a->sc[j];
        backbone_acts_free(&s->bb);
        cm_acts_free(&s->cm);
        free(s->img), free(s->x_up);
    }
    dc_acts_free(&a->dc);
    free(a->x_max), free(a->which), free(a->in), free(a->ws);
    memset(a, 0, sizeof *a);
}

const float* cag_infer_forward(CagInfer* a, const CagNet* m, const float* img, int n) {
    if (n < 1 || n > a->B)
        ZS_FAIL("pass between 1 and the CagInfer's batch size of images",
                "cag_infer_forward: %d images for a batch of %d", n, a->B);
    if (a->K != m->K || a->D != m->D || a->n_scales != m->n_scales)
        ZS_FAIL("initialise the CagInfer with the model it runs",
                "cag_infer_forward: activations for K %d D %d %d scales, model K %d D %d %d scales",
                a->K, a->D, a->n_scales, m->K, m->D, m->n_scales);
    if (a->dv) {
        a->dv->be->infer(a->dv->g, m, img, n, a->B, a->H, a->W, a->logits);
        return a->logits;
    }
    const int B = a->B;
    const size_t per = (size_t)3 * a->H * a->W;
    // a short batch runs padded: every module works on the full B
    if (n < B) {
        memcpy(a->in, img, (size_t)n * per * sizeof(float));
        memset(a->in + (size_t)n * per, 0, (size_t)(B - n) * per * sizeof(float));
        img = a->in;
    }
    const StepRng eval = {0, 0, 0, 0};  // training 0: z = mu, no dropout
    for (int j = 0; j < a->n_scales; j++) {
        InferScale* s = &a->sc[j];
        const float* in = img;
        if (j) {
            resize_bilinear_forward(s->img, img, B, 3, a->H, a->W, s->H, s->W, 0);
            in = s->img;
        }
        backbone_forward(&m->bb, m->params, &s->bb, in, a->ws);
        cm_forward(&m->cm, m->params, &s->cm, s->bb.h, j, &eval, a->ws);
    }
    const float* x = a->sc[0].cm.x;
    if (a->n_scales > 1) {
        const float* ins[CAGNET_MAX_SCALES] = {x};
        for (int j = 1; j < a->n_scales; j++) {
            InferScale* s = &a->sc[j];
            resize_bilinear_forward(s->x_up, s->cm.x, B, a->D, s->bb.Hf, s->bb.Wf, a->Hf, a->Wf, 0);
            ins[j] = s->x_up;
        }
        max_fuse_forward(a->x_max, a->which, ins, a->n_scales, (size_t)B * a->D * a->Hf * a->Wf);
        x = a->x_max;
    }
    dc_forward(&m->dc, m->params, &a->dc, x, DC_ID_REAL, &eval, a->ws);
    return a->dc.cls;
}

void cag_predict_labels(const float* logits, int B, int K, int H, int W, uint8_t* pred) {
    const size_t HW = (size_t)H * W, n = (size_t)B * HW;
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) {
        const float* l = logits + (i / HW) * K * HW + i % HW;  // pixel i's class 0
        int best = 0;
        float v = l[0];
        for (int k = 1; k < K; k++)
            if (l[k * HW] > v) v = l[k * HW], best = k;
        pred[i] = (uint8_t)best;
    }
}

void cag_predict_labels_resized(const float* logits, int B, int K, int Hf, int Wf, int Ho, int Wo,
                                uint8_t* pred) {
    const float sh = hd_resize_scale(Hf, Ho, 0);
    const float sw = hd_resize_scale(Wf, Wo, 0);
    const size_t HWf = (size_t)Hf * Wf;
#pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++) {
        for (int oh = 0; oh < Ho; oh++) {
            int h0, h1, w0, w1;
            float lh, lw;
            hd_bilinear_taps(sh, oh, Hf, 0, &h0, &h1, &lh);
            uint8_t* out = pred + ((size_t)b * Ho + oh) * Wo;
            for (int ow = 0; ow < Wo; ow++) {
                hd_bilinear_taps(sw, ow, Wf, 0, &w0, &w1, &lw);
                int best = 0;
                float v = 0.0f;
                for (int k = 0; k < K; k++) {
                    const float* pl = logits + ((size_t)b * K + k) * HWf;
                    const float* r0 = pl + (size_t)h0 * Wf;
                    const float* r1 = pl + (size_t)h1 * Wf;
                    // the expression of resize_bilinear_forward, so values match bit for bit
                    float u = (1.0f - lh) * ((1.0f - lw) * r0[w0] + lw * r0[w1]) +
                              lh * ((1.0f - lw) * r1[w0] + lw * r1[w1]);
                    if (k == 0 || u > v) v = u, best = k;
                }
                out[ow] = (uint8_t)best;
            }
        }
    }
}
