// Inference forward against a forward composed from the module functions,
// argmax ties, the fused upsample-argmax, and evaluation scoring on a
// hand-made logits tensor.
#include <math.h>
#include <string.h>

#include "evaluate.h"
#include "infer.h"
#include "resize.h"
#include "tiny_cagnet.h"

// C's logits on the eval-mode forward, composed by hand: scale j's input
// resized to floor(side * s), E, CM (rng as given), x upsampled to scale 0's
// feature size, element-wise max, C.
static float* hand_forward(const CagNet* m, const float* img, int B, int H, int W,
                           const StepRng* rng, int* Hf, int* Wf) {
    BackboneActs bb[CAGNET_MAX_SCALES];
    CmActs cm[CAGNET_MAX_SCALES];
    float* x[CAGNET_MAX_SCALES];
    float* ws = NULL;
    for (int j = 0; j < m->n_scales; j++) {
        int h = (int)floor(H * m->scales[j]), w = (int)floor(W * m->scales[j]);
        float* in = t_falloc((size_t)B * 3 * h * w);
        resize_bilinear_forward(in, img, B, 3, H, W, h, w, 0);
        backbone_acts_alloc(&bb[j], &m->bb, B, h, w);
        size_t n = backbone_workspace_floats(&m->bb, B, h, w) +
                   cm_workspace_floats(&m->cm, B, bb[j].Hf, bb[j].Wf) +
                   dc_workspace_floats(&m->dc, B, bb[j].Hf, bb[j].Wf);
        free(ws);
        ws = t_falloc(n);
        backbone_forward(&m->bb, m->params, &bb[j], in, ws);
        cm_acts_alloc(&cm[j], &m->cm, B, bb[j].Hf, bb[j].Wf);
        cm_forward(&m->cm, m->params, &cm[j], bb[j].h, j, rng, ws);
        free(in);
    }
    *Hf = bb[0].Hf, *Wf = bb[0].Wf;
    size_t n0 = (size_t)B * m->D * *Hf * *Wf;
    float* xm = t_falloc(n0);
    memcpy(xm, cm[0].x, n0 * sizeof(float));
    for (int j = 1; j < m->n_scales; j++) {
        x[j] = t_falloc(n0);
        resize_bilinear_forward(x[j], cm[j].x, B, m->D, bb[j].Hf, bb[j].Wf, *Hf, *Wf, 0);
        for (size_t i = 0; i < n0; i++) xm[i] = fmaxf(xm[i], x[j][i]);
        free(x[j]);
    }
    DcActs dc;
    dc_acts_alloc(&dc, &m->dc, B, *Hf, *Wf);
    dc_forward(&m->dc, m->params, &dc, xm, 100, rng, ws);
    size_t nl = (size_t)B * m->K * *Hf * *Wf;
    float* logits = t_falloc(nl);
    memcpy(logits, dc.cls, nl * sizeof(float));
    dc_acts_free(&dc);
    for (int j = 0; j < m->n_scales; j++) backbone_acts_free(&bb[j]), cm_acts_free(&cm[j]);
    free(xm), free(ws);
    return logits;
}

static void test_forward(int msc) {
    Config* cfg = tiny_config(msc, 33);
    CagNet m;
    const uint8_t unseen[5] = {0, 1, 0, 1, 0};
    tiny_cagnet(&m, cfg, 5, unseen);
    CHECK(m.n_scales == (msc ? 3 : 1), "n_scales %d", m.n_scales);
    const int B = 2, H = 33, W = 29;
    float* img = t_falloc((size_t)B * 3 * H * W);
    t_fill_normal(img, (size_t)B * 3 * H * W, 5, 2.0f);

    CagInfer a;
    cag_infer_init(&a, &m, B, H, W);
    const float* got = cag_infer_forward(&a, &m, img, B);
    // different keys on purpose: with training 0 they must not matter
    const StepRng eval = {123, 7, 4, 0};
    int Hf = 0, Wf = 0;
    float* want = hand_forward(&m, img, B, H, W, &eval, &Hf, &Wf);
    CHECK(a.Hf == Hf && a.Wf == Wf && Hf == 5 && Wf == 4, "feature size %dx%d, hand %dx%d", a.Hf,
          a.Wf, Hf, Wf);
    size_t nl = (size_t)B * m.K * Hf * Wf;
    t_check_array(msc ? "logits msc" : "logits", got, want, nl, 1e-6, 0);
    double lo = got[0], hi = got[0];
    for (size_t i = 0; i < nl; i++) lo = fmin(lo, got[i]), hi = fmax(hi, got[i]);
    CHECK(hi - lo > 0.1, "logits spread %g: the check would be vacuous", hi - lo);

    // training mode differs (dropout, z sampled): the comparison can tell
    const StepRng train = {123, 7, 0, 1};
    float* trained = hand_forward(&m, img, B, H, W, &train, &Hf, &Wf);
    double diff = 0;
    for (size_t i = 0; i < nl; i++) diff = fmax(diff, fabs(trained[i] - want[i]));
    CHECK(diff > 1e-3, "training-mode logits differ by only %g", diff);

    // a short batch: sample 0 alone gives sample 0's logits
    float* full = t_falloc(nl);
    memcpy(full, got, nl * sizeof(float));
    got = cag_infer_forward(&a, &m, img, 1);
    t_check_array("short batch sample 0", got, full, nl / B, 1e-5, 0);

    free(full), free(trained), free(want), free(img);
    cag_infer_free(&a);
    cagnet_free(&m);
    config_free(cfg);
}

static void test_argmax(void) {
    // 4 pixels x 3 classes (planes): all tied, 1 and 2 tied, 2 alone, 0 and 2 tied
    const float logits[12] = {0, 0, -1, 5, 0, 2, -3, 1, 0, 2, -0.5f, 5};
    uint8_t pred[4];
    cag_predict_labels(logits, 1, 3, 1, 4, pred);
    const uint8_t want[4] = {0, 1, 2, 0};
    CHECK(!memcmp(pred, want, 4), "argmax %d %d %d %d", pred[0], pred[1], pred[2], pred[3]);

    // the fused upsample + argmax equals resize_bilinear_forward then argmax
    const int B = 2, K = 6, Hf = 5, Wf = 7, Ho = 33, Wo = 29;
    float* l = t_falloc((size_t)B * K * Hf * Wf);
    float* up = t_falloc((size_t)B * K * Ho * Wo);
    t_fill_normal(l, (size_t)B * K * Hf * Wf, 3, 1.0f);
    resize_bilinear_forward(up, l, B, K, Hf, Wf, Ho, Wo, 0);
    uint8_t* p1 = malloc((size_t)B * Ho * Wo);
    uint8_t* p2 = malloc((size_t)B * Ho * Wo);
    cag_predict_labels(up, B, K, Ho, Wo, p1);
    cag_predict_labels_resized(l, B, K, Hf, Wf, Ho, Wo, p2);
    int bad = 0, hist[6] = {0};
    for (int i = 0; i < B * Ho * Wo; i++) bad += p1[i] != p2[i], hist[p2[i]]++;
    CHECK(bad == 0, "fused upsample-argmax: %d of %d pixels differ", bad, B * Ho * Wo);
    for (int k = 0; k < K; k++) CHECK(hist[k] > 0, "class %d never predicted", k);
    cag_predict_labels_resized(l, B, K, Hf, Wf, Hf, Wf, p2);
    cag_predict_labels(l, B, K, Hf, Wf, p1);
    CHECK(!memcmp(p1, p2, (size_t)B * Hf * Wf), "same-size resize changes the argmax");
    free(l), free(up), free(p1), free(p2);
}

// Sample 0: class 0 high on the left column, class 1 on the right, class 2 a
// constant 1.5 that ties both at the upsampled columns 1 and 2. Sample 1:
// all zero (every pixel ties, argmax 0), unreadable (valid 0).
static void test_scoring(void) {
    enum { K = 3, Hf = 2, Wf = 2, H = 4, W = 4 };
    float logits[2 * K * Hf * Wf] = {2, 0, 2, 0, 0, 2, 0, 2, 1.5f, 1.5f, 1.5f, 1.5f};
    uint8_t labels[2 * H * W] = {0,   0,   1, 255,  //
                                 2,   0,   1, 1,    //
                                 255, 255, 2, 1,    //
                                 1,   0,   1, 1};   // sample 1 all class 0
    const uint8_t valid[2] = {1, 0};
    uint8_t ws[2 * (H * W + Hf * Wf)];
    ConfMat cm;
    confusion_init(&cm, K);

    // full resolution: predicted columns 0, 0 (tie 0/2), 1 (tie 1/2), 1
    eval_score_batch(&cm, logits, labels, valid, 2, K, Hf, Wf, H, W, 1, ws);
    const uint64_t full[K * K] = {4, 0, 0, 1, 6, 0, 1, 1, 0};
    CHECK(!memcmp(cm.m, full, sizeof full),
          "full: %llu %llu %llu / %llu %llu %llu / %llu %llu %llu", (unsigned long long)cm.m[0],
          (unsigned long long)cm.m[1], (unsigned long long)cm.m[2], (unsigned long long)cm.m[3],
          (unsigned long long)cm.m[4], (unsigned long long)cm.m[5], (unsigned long long)cm.m[6],
          (unsigned long long)cm.m[7], (unsigned long long)cm.m[8]);

    // valid NULL scores sample 1 too: 16 more (0, 0)
    confusion_reset(&cm);
    eval_score_batch(&cm, logits, labels, NULL, 2, K, Hf, Wf, H, W, 1, ws);
    CHECK(cm.m[0] == 20 && cm.m[4] == 6, "full, all valid: m00 %llu m11 %llu",
          (unsigned long long)cm.m[0], (unsigned long long)cm.m[4]);

    // feature resolution: labels at rows/cols {0, 2}: 0, 1 / 255, 2 against predictions 0, 1
    confusion_reset(&cm);
    eval_score_batch(&cm, logits, labels, valid, 2, K, Hf, Wf, H, W, 0, ws);
    const uint64_t feat[K * K] = {1, 0, 0, 0, 1, 0, 0, 1, 0};
    CHECK(!memcmp(cm.m, feat, sizeof feat), "feature: m00 %llu m11 %llu m21 %llu m22 %llu",
          (unsigned long long)cm.m[0], (unsigned long long)cm.m[4], (unsigned long long)cm.m[7],
          (unsigned long long)cm.m[8]);
    confusion_free(&cm);
}

int main(void) {
    test_forward(0);
    test_forward(1);
    test_argmax();
    test_scoring();
    return t_report("test_infer");
}
