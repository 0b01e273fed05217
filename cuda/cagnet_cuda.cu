// GPU mirror of src/cagnet.c: the same step1 / step2 / updates, op for op,
// on device buffers. Host-side pieces (label resizing, loss ratios, the MMD
// row layout, the step2 class draw) are cagnet.c's own functions run on the
// host CagNet's buffers; only their results travel to the device.
#include <string.h>

#include "device_model.h"
#include "map.cuh"
extern "C" {
#include "loss.h"
#include "resize.h"
}

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

static float* dalloc(DeviceModel* g, size_t n) {
    return (float*)device_arena_alloc(g->arena, (n ? n : 1) * sizeof(float));
}
static uint8_t* dalloc_u8(DeviceModel* g, size_t n) {
    return (uint8_t*)device_arena_alloc(g->arena, n ? n : 1);
}

struct Scale {
    float* x;
    float s;
    __device__ void operator()(size_t i) const { x[i] *= s; }
};
// x *= s, as cagnet.c's ce_output scales its CE gradient
static void scale_cuda(CudaContext* ctx, float* x, float s, size_t n) {
    launch_map(ctx, Scale{x, s}, n);
}

// ---------------------------------------------------------------- build

// The same buffers as cagnet.c's alloc_acts, in the arena; host-only index
// arrays (MMD layout) stay in the host CagNet.
static void alloc_acts(DeviceModel* g, const CagNet* m) {
    int B = m->B;
    for (int j = 0; j < m->n_scales; j++) {
        const CagScale* hs = &m->sc[j];
        DeviceScale* s = &g->sc[j];
        backbone_acts_alloc_cuda(&s->bb, &m->bb, B, hs->H, hs->W, g->arena);
        size_t nf = (size_t)B * m->D * hs->Hf * hs->Wf;
        s->img = j ? dalloc(g, (size_t)B * 3 * hs->H * hs->W) : NULL;
        s->lbl = dalloc_u8(g, (size_t)B * hs->Hf * hs->Wf);
        s->w = dalloc(g, (size_t)B * hs->Hf * hs->Wf);
        cm_acts_alloc_cuda(&s->cm, &m->cm, B, hs->Hf, hs->Wf, g->arena);
        dc_acts_alloc_cuda(&s->dc, &m->dc, B, hs->Hf, hs->Wf, g->arena);
        s->dx = dalloc(g, nf);
        s->dh = dalloc(g, nf);
    }
    int h = m->sc[0].Hf, w = m->sc[0].Wf;
    size_t n0 = (size_t)B * m->D * h * w, dcls = 0;
    for (int j = 0; j < m->n_scales; j++)
        dcls = max_sz(dcls, (size_t)B * m->K * m->sc[j].Hf * m->sc[j].Wf);
    if (m->n_scales > 1) {
        for (int j = 1; j < m->n_scales; j++) g->sc[j].x_up = dalloc(g, n0);
        g->x_max = dalloc(g, n0);
        g->dx_max = dalloc(g, n0);
        g->which = dalloc_u8(g, n0);
        dc_acts_alloc_cuda(&g->dc_max, &m->dc, B, h, w, g->arena);
    }
    g->emap = dalloc(g, (size_t)B * m->E * h * w);
    g->latent = dalloc(g, n0);
    g->y2 = dalloc_u8(g, (size_t)B * h * w);
    gen_acts_alloc_cuda(&g->gen_acts, &m->gen, B, h, w, g->arena);
    dc_acts_alloc_cuda(&g->dc_fake, &m->dc, B, h, w, g->arena);
    g->dfake = dalloc(g, n0);
    g->dgan = dalloc(g, (size_t)B * h * w);
    g->dcls = dalloc(g, dcls);
    g->valid = dalloc_u8(g, (size_t)B * h * w);
    g->pos = (int*)device_arena_alloc(g->arena, (size_t)B * h * w * sizeof(int));
    if (m->content_mmd) {  // X, Y, dX of every global pixel: within mem_plan's MMD rows
        int world = m->dist ? m->dist->world : 1;
        g->rows = dalloc(g, 3 * (size_t)world * n0);
    }
    g->ws = dalloc(g, m->ws_n);
    g->img = dalloc(g, (size_t)B * 3 * m->H * m->W);
}

// Parameters and optimizer state between the host CagNet and the device.
static void sync_state(DeviceModel* g, CagNet* m, int to_device) {
    size_t P = m->pt.total * sizeof(float);
    Optimizer* opt[3] = {&m->opt_e, &m->opt_d, &m->opt_g};
    if (to_device) {
        cuda_memcpy_h2d(g->params, m->params, P);
        for (int i = 0; i < 3; i++) {
            cuda_memcpy_h2d(g->opt_m[i], opt[i]->m, opt[i]->span_n * sizeof(float));
            if (g->opt_v[i]) cuda_memcpy_h2d(g->opt_v[i], opt[i]->v, opt[i]->span_n * sizeof(float));
        }
        return;
    }
    cuda_memcpy_d2h(m->params, g->params, P);
    for (int i = 0; i < 3; i++) {
        cuda_memcpy_d2h(opt[i]->m, g->opt_m[i], opt[i]->span_n * sizeof(float));
        if (g->opt_v[i]) cuda_memcpy_d2h(opt[i]->v, g->opt_v[i], opt[i]->span_n * sizeof(float));
    }
}

// Output pixels of every scale: the label maps' bytes, the weights' floats.
static size_t target_pixels(const CagNet* m) {
    size_t n = 0;
    for (int j = 0; j < m->n_scales; j++) n += (size_t)m->B * m->sc[j].Hf * m->sc[j].Wf;
    return n;
}

// Parameters, gradients, optimizer state, embeddings and activations.
static void alloc_all(DeviceModel* g, const CagNet* m) {
    size_t P = m->pt.total;
    g->params = dalloc(g, P);
    g->grads = dalloc(g, P);
    const Optimizer* opt[3] = {&m->opt_e, &m->opt_d, &m->opt_g};
    for (int i = 0; i < 3; i++) {
        g->opt_m[i] = dalloc(g, opt[i]->span_n);
        g->opt_v[i] = opt[i]->v ? dalloc(g, opt[i]->span_n) : NULL;
    }
    g->emb = dalloc(g, (size_t)m->K * m->E);
    alloc_acts(g, m);
}

DeviceModel* device_model_create(CagNet* m, const DeviceOptions* o) {
    DeviceModel* g = (DeviceModel*)callocCheck(1, sizeof *g);
    g->ctx = cuda_context_create(o->tf32, o->deterministic);
    // a counting pass sizes the one allocation exactly (the memory plan
    // checked before is the same count, give or take alignment)
    g->arena = device_arena_measure();
    alloc_all(g, m);
    size_t bytes = device_arena_used(g->arena);
    device_arena_destroy(g->arena);
    for (int j = 0; j < m->n_scales; j++) free(g->sc[j].bb.blocks);  // host records
    g->arena = device_arena_create(bytes);
    alloc_all(g, m);
    cuda_memcpy_h2d(g->emb, m->emb, (size_t)m->K * m->E * sizeof(float));
    // labels of every scale, then scale 0's valid mask
    g->pinned_lbl = (uint8_t*)cuda_pinned_alloc(target_pixels(m) +
                                                (size_t)m->B * m->sc[0].Hf * m->sc[0].Wf);
    g->pinned_w = (float*)cuda_pinned_alloc(target_pixels(m) * sizeof(float));
    cudaCheck(cudaStreamCreateWithFlags(&g->copy, cudaStreamNonBlocking));
    cudaCheck(cudaEventCreateWithFlags(&g->img_ready, cudaEventDisableTiming));
    cudaCheck(cudaEventCreateWithFlags(&g->lbl_ready, cudaEventDisableTiming));
    sync_state(g, m, 1);
    grad_sync_init(&g->sync, o);
    return g;
}

void device_model_destroy(DeviceModel* g) {
    if (!g) return;
    grad_sync_destroy(&g->sync);
    cuda_synchronize(g->ctx);
    device_infer_free(g);
    for (int j = 0; j < CAGNET_MAX_SCALES; j++) free(g->sc[j].bb.blocks);  // host records
    if (g->mmd_ws) cudaCheck(cudaFree(g->mmd_ws));
    cuda_pinned_free(g->pinned_lbl);
    cuda_pinned_free(g->pinned_w);
    cudaCheck(cudaEventDestroy(g->img_ready));
    cudaCheck(cudaEventDestroy(g->lbl_ready));
    cudaCheck(cudaStreamDestroy(g->copy));
    device_arena_destroy(g->arena);
    cuda_context_destroy(g->ctx);
    free(g);
}

void device_model_download(DeviceModel* g, CagNet* m) { sync_state(g, m, 0); }

// ---------------------------------------------------------------- pieces

// cagnet.c ce_output on the device (w: device weights or NULL).
static float ce_output(DeviceModel* g, CagNet* m, const DcActs* a, const float* x,
                       const uint8_t* lbl, const float* w, float ratio, float scale_d,
                       float scale_e, float* dx) {
    CudaContext* ctx = g->ctx;
    size_t n = (size_t)a->B * m->K * a->H * a->W;
    int HW = a->H * a->W;
    fill_cuda(ctx, g->dcls, 0.0f, n);
    float loss = ratio * softmax_ce_forward_backward_cuda(ctx, g->dcls, a->cls, lbl, w, a->B,
                                                          m->K, HW, ratio);
    if (scale_d != 0.0f) {
        scale_cuda(ctx, g->dcls, scale_d, n);
        dc_backward_cuda(ctx, &m->dc, g->params, g->grads, a, x, NULL, g->dcls, NULL, g->ws);
        if (scale_e != 0.0f) scale_cuda(ctx, g->dcls, scale_e / scale_d, n);
    } else {
        scale_cuda(ctx, g->dcls, scale_e, n);
    }
    if (scale_e != 0.0f && dx)
        dc_backward_cuda(ctx, &m->dc, g->params, NULL, a, x, NULL, g->dcls, dx, g->ws);
    return loss;
}

// Grows the MMD workspace (cudaFree synchronises the device, so only when a
// batch's classes need more than any before).
static float* mmd_ws_reserve(DeviceModel* g, size_t n) {
    if (n > g->mmd_ws_n) {
        if (g->mmd_ws) cudaCheck(cudaFree(g->mmd_ws));
        cudaCheck(cudaMalloc((void**)&g->mmd_ws, n * sizeof(float)));
        g->mmd_ws_n = n;
    }
    return g->mmd_ws;
}

// cagnet.c content_mmd on the device. Several ranks: this rank's rows go to
// the host, MPI gathers them, the regrouped X and Y come back, and this
// rank's gradient rows are picked out on the host.
static float content_mmd(DeviceModel* g, CagNet* m, const float* fake, const float* real,
                         const uint8_t* lbl_host, float scale) {
    CudaContext* ctx = g->ctx;
    int D = m->D, K = m->K, HW = m->sc[0].Hf * m->sc[0].Wf;
    int P = cagnet_sort_by_class(m, lbl_host);
    const int* start = m->cls_start;
    int multi = m->dist && m->dist->world > 1;
    int Pg = multi ? cagnet_gather_layout(m, start) : P;
    const int* gstart = multi ? m->cls_gstart : start;
    size_t PD = (size_t)Pg * D, ws_n = mmd_grouped_workspace_floats(gstart, gstart, K);
    // Pg <= world*B*Hf0*Wf0 rows: X, Y and dX fit the arena block of alloc_acts
    float *X = g->rows, *Y = X + PD, *dX = Y + PD, *ws = mmd_ws_reserve(g, max_sz(ws_n, 1));
    cuda_memcpy_h2d(g->pos, m->cls_pos, (size_t)P * sizeof(int));
    if (!multi) {
        gather_rows_cuda(ctx, X, fake, g->pos, P, D, HW);
        gather_rows_cuda(ctx, Y, real, g->pos, P, D, HW);
    } else {
        // this rank's X rows then Y rows, gathered on the host like cagnet.c
        size_t mineD = (size_t)P * D, all = 2 * PD;
        float* S = (float*)mallocCheck((all + 1) * sizeof(float));
        float* Xs = S;
        for (int r = 0; r < m->dist->rank; r++) Xs += m->gather_n[r];
        gather_rows_cuda(ctx, dX, fake, g->pos, P, D, HW);
        cuda_memcpy_d2h(Xs, dX, mineD * sizeof(float));
        gather_rows_cuda(ctx, dX, real, g->pos, P, D, HW);
        cuda_memcpy_d2h(Xs + mineD, dX, mineD * sizeof(float));
        dist_allgather_floats(m->dist, S, m->gather_n);
        float* XY = (float*)mallocCheck((all + 1) * sizeof(float));
        cagnet_regroup_rows(m, XY, XY + PD, S);
        cuda_memcpy_h2d(X, XY, all * sizeof(float));
        free(XY);
        free(S);
    }
    fill_cuda(ctx, dX, 0.0f, PD);
    float loss = mmd_grouped_forward_backward_cuda(ctx, dX, X, Y, gstart, gstart, K, D,
                                                   m->mmd_sigmas, m->n_sigmas, ws, scale);
    if (!multi) {
        scatter_rows_add_cuda(ctx, g->dfake, dX, g->pos, P, D, HW);
        return loss;
    }
    // this rank's rows of each class sit at cls_mine[c] in the global order
    size_t mineD = (size_t)P * D;
    float* all = (float*)mallocCheck((PD + 1) * sizeof(float));
    float* mine = (float*)mallocCheck((mineD + 1) * sizeof(float));
    cuda_memcpy_d2h(all, dX, PD * sizeof(float));
    for (int c = 0; c < K; c++) {
        size_t rows = (size_t)(start[c + 1] - start[c]);
        memcpy(mine + (size_t)start[c] * D, all + (size_t)m->cls_mine[c] * D,
               rows * D * sizeof(float));
    }
    cuda_memcpy_h2d(dX, mine, mineD * sizeof(float));
    scatter_rows_add_cuda(ctx, g->dfake, dX, g->pos, P, D, HW);
    free(mine);
    free(all);
    return loss;
}

static float content_loss(DeviceModel* g, CagNet* m, const float* fake, const float* real,
                          float ratio, float scale) {
    if (m->content_mmd) return content_mmd(g, m, fake, real, m->sc[0].lbl, scale);
    int HW = m->sc[0].Hf * m->sc[0].Wf;
    return ratio * mse_forward_backward_cuda(g->ctx, g->dfake, fake, real, g->valid, m->B, m->D,
                                             HW, scale * ratio);
}

// ---------------------------------------------------------------- step1

// The batch goes up on the copy stream straight from the loader's buffer
// (page-locked: device_run_batch_allocator); the compute stream waits for it.
static void upload_images(DeviceModel* g, const CagNet* m, const float* img) {
    size_t n = (size_t)m->B * 3 * m->H * m->W;
    cudaCheck(cudaMemcpyAsync(g->img, img, n * sizeof(float), cudaMemcpyHostToDevice, g->copy));
    cudaCheck(cudaEventRecord(g->img_ready, g->copy));
    cudaCheck(cudaStreamWaitEvent(g->ctx->stream, g->img_ready, 0));
}

// Called once the encoder is queued, so the host work overlaps it: labels
// (and weights) of every output size (into the host CagNet's maps, which the
// loss layouts read), the counts of cagnet_count_targets and the valid mask,
// then their copy on the copy stream. Returns how many counts.
static int upload_labels(DeviceModel* g, CagNet* m, const uint8_t* labels, const float* weights,
                         double* cnt) {
    cagnet_resize_targets(m, labels, weights);
    int n_cnt = cagnet_count_targets(m, weights != NULL, cnt);
    uint8_t* p = g->pinned_lbl;
    float* pw = g->pinned_w;
    for (int j = 0; j < m->n_scales; j++) {
        CagScale* s = &m->sc[j];
        size_t n = (size_t)m->B * s->Hf * s->Wf;
        memcpy(p, s->lbl, n);
        cudaCheck(cudaMemcpyAsync(g->sc[j].lbl, p, n, cudaMemcpyHostToDevice, g->copy));
        p += n;
        if (!weights) continue;
        memcpy(pw, s->w, n * sizeof(float));
        cudaCheck(cudaMemcpyAsync(g->sc[j].w, pw, n * sizeof(float), cudaMemcpyHostToDevice,
                                  g->copy));
        pw += n;
    }
    size_t n0 = (size_t)m->B * m->sc[0].Hf * m->sc[0].Wf;
    memcpy(p, m->valid, n0);
    cudaCheck(cudaMemcpyAsync(g->valid, p, n0, cudaMemcpyHostToDevice, g->copy));
    cudaCheck(cudaEventRecord(g->lbl_ready, g->copy));
    cudaCheck(cudaStreamWaitEvent(g->ctx->stream, g->lbl_ready, 0));
    return n_cnt;
}

static void encode(DeviceModel* g, CagNet* m, const StepRng* rng) {
    CudaContext* ctx = g->ctx;
    int B = m->B;
    DeviceScale* s0 = &g->sc[0];
    for (int j = 0; j < m->n_scales; j++) {
        DeviceScale* s = &g->sc[j];
        const CagScale* hs = &m->sc[j];
        const float* in = g->img;
        if (j) {
            resize_bilinear_forward_cuda(ctx, s->img, g->img, B, 3, m->H, m->W, hs->H, hs->W, 0);
            in = s->img;
        }
        backbone_forward_cuda(ctx, &m->bb, g->params, &s->bb, in, g->ws);
        cm_forward_cuda(ctx, &m->cm, g->params, &s->cm, s->bb.h, j, rng, g->ws);
    }
    if (m->n_scales == 1) return;
    const float* ins[CAGNET_MAX_SCALES] = {s0->cm.x};
    int Hf0 = m->sc[0].Hf, Wf0 = m->sc[0].Wf;
    for (int j = 1; j < m->n_scales; j++) {
        DeviceScale* s = &g->sc[j];
        resize_bilinear_forward_cuda(ctx, s->x_up, s->cm.x, B, m->D, m->sc[j].Hf, m->sc[j].Wf,
                                     Hf0, Wf0, 0);
        ins[j] = s->x_up;
    }
    max_fuse_forward_cuda(ctx, g->x_max, g->which, ins, m->n_scales, (size_t)B * m->D * Hf0 * Wf0);
}

static void grads_ready(void* arg, size_t done_from) {
    DeviceModel* g = (DeviceModel*)arg;
    grad_sync_ready(&g->sync, g->ctx, g->grads, done_from);
}

static float encoder_backward(DeviceModel* g, CagNet* m, float r0) {
    CudaContext* ctx = g->ctx;
    int B = m->B, D = m->D;
    DeviceScale* s0 = &g->sc[0];
    int Hf0 = m->sc[0].Hf, Wf0 = m->sc[0].Wf, HW = Hf0 * Wf0;
    size_t n0 = (size_t)B * D * HW;
    float* dmu = g->dfake;
    float* dlv = g->latent;
    fill_cuda(ctx, dmu, 0.0f, n0);
    fill_cuda(ctx, dlv, 0.0f, n0);
    float kl = r0 * kl_forward_backward_cuda(ctx, dmu, dlv, s0->cm.mu, s0->cm.logvar, g->valid, B,
                                             D, HW, m->kl_weight * r0);
    if (m->n_scales > 1) {
        float* douts[CAGNET_MAX_SCALES] = {s0->dx};
        for (int j = 1; j < m->n_scales; j++) {
            douts[j] = g->sc[j].x_up;
            fill_cuda(ctx, douts[j], 0.0f, n0);
        }
        max_fuse_backward_cuda(ctx, douts, g->dx_max, g->which, m->n_scales, n0);
        for (int j = 1; j < m->n_scales; j++)
            resize_bilinear_backward_cuda(ctx, g->sc[j].dx, douts[j], B, D, m->sc[j].Hf,
                                          m->sc[j].Wf, Hf0, Wf0, 0);
    }
    // the last scale's backward completes E's gradients, CM first, then
    // ASPP and the blocks from the top: their buckets start reducing at once
    GradReady ready = {grads_ready, g};
    for (int j = 0; j < m->n_scales; j++) {
        DeviceScale* s = &g->sc[j];
        int last = j == m->n_scales - 1;
        fill_cuda(ctx, s->dh, 0.0f, (size_t)B * D * m->sc[j].Hf * m->sc[j].Wf);
        cm_backward_cuda(ctx, &m->cm, g->params, g->grads, &s->cm, s->bb.h, s->dx,
                         j ? NULL : dmu, j ? NULL : dlv, s->dh, g->ws);
        if (last) grads_ready(g, m->pt.region_lo[REGION_CM]);
        backbone_backward_cuda(ctx, &m->bb, g->params, g->grads, &s->bb, s->dh, g->ws,
                               last ? &ready : NULL);
    }
    return kl;
}

void cagnet_step1_cuda(DeviceModel* g, CagNet* m, const UpdatePlan* plan, const float* img,
                       const uint8_t* labels, const float* weights, const StepRng* rng,
                       const Step1Mode* mode, Step1Losses* out) {
    CudaContext* ctx = g->ctx;
    Step1Mode md = mode ? *mode : (Step1Mode){m->real_ce_weight, m->fake_ce_weight, 1};
    int B = m->B, D = m->D;
    DeviceScale* s0 = &g->sc[0];
    int HW = m->sc[0].Hf * m->sc[0].Wf;
    size_t n0 = (size_t)B * D * HW;
    const ParamTable* pt = &m->pt;
    grad_sync_begin(&g->sync, m, plan);
    fill_cuda(ctx, g->grads, 0.0f, pt->total);
    upload_images(g, m, img);
    encode(g, m, rng);
    double cnt[2 * CAGNET_MAX_SCALES];
    int n_cnt = upload_labels(g, m, labels, weights, cnt);

    embed_labels_cuda(ctx, g->emap, g->emb, s0->lbl, B, m->E, HW);
    gen_forward_cuda(ctx, &m->gen, g->params, &g->gen_acts, g->emap, s0->cm.z, rng, g->ws);
    const float* fake = g->gen_acts.fake;

    dc_forward_cuda(ctx, &m->dc, g->params, &s0->dc, s0->cm.x, DC_ID_REAL, rng, g->ws);
    dc_forward_cuda(ctx, &m->dc, g->params, &g->dc_fake, fake, DC_ID_FAKE, rng, g->ws);
    for (int j = 1; j < m->n_scales; j++)
        dc_forward_cuda(ctx, &m->dc, g->params, &g->sc[j].dc, g->sc[j].cm.x, DC_ID_MSC + j - 1,
                        rng, g->ws);
    if (m->n_scales > 1)
        dc_forward_cuda(ctx, &m->dc, g->params, &g->dc_max, g->x_max,
                        DC_ID_MSC + m->n_scales - 1, rng, g->ws);

    // r: shares of the valid-pixel means; rc: the real CEs' (of Σ w when weighted)
    float r[2 * CAGNET_MAX_SCALES];
    cagnet_share_ratios(m, cnt, r, n_cnt);
    const float* rc = weights ? r + m->n_scales : r;
    Step1Losses L;
    memset(&L, 0, sizeof L);

    fill_cuda(ctx, g->dgan, 0.0f, (size_t)B * HW);
    L.d_gan_real = r[0] * gan_loss_forward_backward_cuda(ctx, g->dgan, s0->dc.gan, g->valid,
                                                         m->gan_kind, 1.0f, (size_t)B * HW, r[0]);
    dc_backward_cuda(ctx, &m->dc, g->params, g->grads, &s0->dc, s0->cm.x, g->dgan, NULL, NULL,
                     g->ws);
    int n_out = m->n_scales > 1 ? m->n_scales + 1 : 1;
    float wd = md.real_ce_weight / n_out, we = md.train_e ? m->backbone_ce_weight / n_out : 0.0f;
    if (md.train_e)
        for (int j = 0; j < m->n_scales; j++)
            fill_cuda(ctx, g->sc[j].dx, 0.0f, (size_t)B * D * m->sc[j].Hf * m->sc[j].Wf);
    float ce = 0.0f;
    for (int j = 0; j < m->n_scales; j++) {
        DeviceScale* s = &g->sc[j];
        ce += ce_output(g, m, &s->dc, s->cm.x, s->lbl, weights ? s->w : NULL, rc[j], wd, we,
                        s->dx);
    }
    if (m->n_scales > 1) {
        if (md.train_e) fill_cuda(ctx, g->dx_max, 0.0f, n0);
        ce += ce_output(g, m, &g->dc_max, g->x_max, s0->lbl, weights ? s0->w : NULL, rc[0], wd,
                        we, g->dx_max);
    }
    L.d_ce_real = L.e_ce = ce / n_out;

    fill_cuda(ctx, g->dgan, 0.0f, (size_t)B * HW);
    L.d_gan_fake = r[0] * gan_loss_forward_backward_cuda(ctx, g->dgan, g->dc_fake.gan, g->valid,
                                                         m->gan_kind, 0.0f, (size_t)B * HW, r[0]);
    dc_backward_cuda(ctx, &m->dc, g->params, g->grads, &g->dc_fake, fake, g->dgan, NULL, NULL,
                     g->ws);
    L.d_ce_fake =
        ce_output(g, m, &g->dc_fake, fake, s0->lbl, NULL, r[0], md.fake_ce_weight, 0.0f, NULL);

    fill_cuda(ctx, g->dgan, 0.0f, (size_t)B * HW);
    fill_cuda(ctx, g->dfake, 0.0f, n0);
    L.g_gan = r[0] * gan_loss_forward_backward_cuda(ctx, g->dgan, g->dc_fake.gan, g->valid,
                                                    m->gan_kind, 1.0f, (size_t)B * HW,
                                                    m->gan_weight * r[0]);
    dc_backward_cuda(ctx, &m->dc, g->params, NULL, &g->dc_fake, fake, g->dgan, NULL, g->dfake,
                     g->ws);
    L.g_content = content_loss(g, m, fake, s0->cm.x, r[0], m->content_weight);
    gen_backward_cuda(ctx, &m->gen, g->params, g->grads, &g->gen_acts, g->dfake, g->ws);
    // D and G gradients are complete (regions lie E < D < G)
    grads_ready(g, pt->region_lo[REGION_DC]);

    if (md.train_e)
        L.kl = encoder_backward(g, m, r[0]);
    else
        L.kl = r[0] * kl_forward_backward_cuda(ctx, NULL, NULL, s0->cm.mu, s0->cm.logvar,
                                               g->valid, B, D, HW, 1.0f);

    cagnet_sum_losses(m, &L);
    L.loss_d = L.d_gan_real + L.d_gan_fake + md.real_ce_weight * L.d_ce_real +
               md.fake_ce_weight * L.d_ce_fake;
    L.loss_e = m->backbone_ce_weight * L.e_ce + m->kl_weight * L.kl;
    L.loss_g = m->gan_weight * L.g_gan + m->content_weight * L.g_content;
    *out = L;
}

// ---------------------------------------------------------------- step2

float cagnet_step2_cuda(DeviceModel* g, CagNet* m, const UpdatePlan* plan,
                                   const StepRng* rng) {
    CudaContext* ctx = g->ctx;
    int B = m->B, D = m->D;
    int HW = m->sc[0].Hf * m->sc[0].Wf;
    grad_sync_begin(&g->sync, m, plan);
    fill_cuda(ctx, g->grads, 0.0f, m->pt.total);
    cagnet_draw_step2_labels(m, rng);
    cuda_memcpy_h2d(g->y2, m->y2, (size_t)B * HW);
    for (int b = 0; b < B; b++)
        rng_fill_normal_cuda(ctx, g->latent + (size_t)b * D * HW, (size_t)D * HW, rng->seed,
                             rng_stream(RNG_LATENT, (uint64_t)rng->iter,
                                        (uint64_t)(rng->sample0 + b)),
                             0);
    embed_labels_cuda(ctx, g->emap, g->emb, g->y2, B, m->E, HW);
    gen_forward_cuda(ctx, &m->gen, g->params, &g->gen_acts, g->emap, g->latent, rng, g->ws);
    dc_forward_cuda(ctx, &m->dc, g->params, &g->dc_fake, g->gen_acts.fake, DC_ID_REAL, rng, g->ws);
    fill_cuda(ctx, g->dfake, 0.0f, (size_t)B * D * HW);
    double cnt = (double)B * HW;
    float r;
    cagnet_share_ratios(m, &cnt, &r, 1);
    float ce = ce_output(g, m, &g->dc_fake, g->gen_acts.fake, g->y2, NULL, r,
                         m->step2_cls_weight, m->step2_gen_weight, g->dfake);
    if (m->step2_gen_weight != 0.0f)
        gen_backward_cuda(ctx, &m->gen, g->params, g->grads, &g->gen_acts, g->dfake, g->ws);
    if (!(m->dist && m->dist->world > 1)) return ce;
    double sum = ce;
    dist_allreduce_doubles(m->dist, &sum, 1);
    return (float)sum;
}

// ---------------------------------------------------------------- updates

// optimizer_step (optim.c) over the device buffers; the host step counter
// advances so checkpoints and Adam's bias corrections stay in step.
static void optimizer_step_cuda(CudaContext* ctx, Optimizer* o, float* params, float* m,
                                float* v, const float* grads, float base_lr) {
    float bc1, bc2;
    adam_bias_corrections(&o->adam, o->step, &bc1, &bc2);
    for (int i = 0; i < o->n_groups; i++) {
        const ParamGroup* pg = &o->groups[i];
        float lr = base_lr * pg->lr_mult;
        size_t s = pg->offset - o->span_lo;
        if (o->kind == OPTIM_SGD)
            sgd_update_cuda(ctx, params + pg->offset, m + s, grads + pg->offset, lr,
                            o->sgd.momentum, pg->weight_decay, pg->count);
        else
            adam_update_cuda(ctx, params + pg->offset, m + s, v + s, grads + pg->offset, lr,
                             o->adam.beta1, o->adam.beta2, o->adam.eps, pg->weight_decay, bc1,
                             bc2, pg->count);
    }
    o->step++;
}

void cagnet_apply_cuda(DeviceModel* g, CagNet* m, const UpdatePlan* p) {
    grad_sync_finish(&g->sync, g->ctx, g->grads);
    // cagnet_apply's order: D, E, G
    if (p->update_d)
        optimizer_step_cuda(g->ctx, &m->opt_d, g->params, g->opt_m[1], g->opt_v[1], g->grads,
                            p->lr_d);
    if (p->update_e)
        optimizer_step_cuda(g->ctx, &m->opt_e, g->params, g->opt_m[0], g->opt_v[0], g->grads,
                            p->lr_e);
    if (p->update_g)
        optimizer_step_cuda(g->ctx, &m->opt_g, g->params, g->opt_m[2], g->opt_v[2], g->grads,
                            p->lr_g);
}
