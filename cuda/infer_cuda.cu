// GPU mirror of src/infer.c's eval-mode forward (cag_infer_forward): the
// CagInfer layout of cag_infer_layout with device buffers, in an arena of its
// own sized by a counting pass over the same allocations.
#include <string.h>

#include "device_model.h"

static float* falloc(DeviceArena* a, size_t n) {
    return (float*)device_arena_alloc(a, (n ? n : 1) * sizeof(float));
}

// cag_infer_init's buffers from arena (a real or a counting one).
static void infer_alloc(CagInfer* a, const CagNet* m, DeviceArena* arena) {
    int B = a->B;
    for (int j = 0; j < a->n_scales; j++) {
        InferScale* s = &a->sc[j];
        free(s->bb.blocks);  // host records of a counting pass
        backbone_acts_alloc_cuda(&s->bb, &m->bb, B, s->H, s->W, arena);
        s->img = j ? falloc(arena, (size_t)B * 3 * s->H * s->W) : NULL;
        cm_acts_alloc_cuda(&s->cm, &m->cm, B, s->bb.Hf, s->bb.Wf, arena);
    }
    size_t n0 = (size_t)B * m->D * a->Hf * a->Wf;
    if (a->n_scales > 1) {
        for (int j = 1; j < a->n_scales; j++) a->sc[j].x_up = falloc(arena, n0);
        a->x_max = falloc(arena, n0);
        a->which = (uint8_t*)device_arena_alloc(arena, n0);
    }
    dc_acts_alloc_cuda(&a->dc, &m->dc, B, a->Hf, a->Wf, arena);
    a->in = falloc(arena, (size_t)B * 3 * a->H * a->W);
    a->ws = falloc(arena, a->ws_n);
}

static void infer_release(DeviceModel* g) {
    for (int j = 0; j < g->inf.n_scales; j++) free(g->inf.sc[j].bb.blocks);
    if (g->inf_arena) device_arena_destroy(g->inf_arena);
    g->inf_arena = NULL;
    memset(&g->inf, 0, sizeof g->inf);
}

// Activations for (B, H, W), kept while the size stays.
static CagInfer* infer_for(DeviceModel* g, const CagNet* m, int B, int H, int W) {
    CagInfer* a = &g->inf;
    if (g->inf_arena && a->B == B && a->H == H && a->W == W) return a;
    cuda_synchronize(g->ctx);
    infer_release(g);
    cag_infer_layout(a, m, B, H, W);
    DeviceArena* count = device_arena_measure();
    infer_alloc(a, m, count);
    g->inf_arena = device_arena_create(device_arena_used(count));
    device_arena_destroy(count);
    infer_alloc(a, m, g->inf_arena);
    return a;
}

void device_infer(DeviceModel* g, const CagNet* m, const float* img, int n, int B, int H, int W,
                  float* logits) {
    CudaContext* ctx = g->ctx;
    CagInfer* a = infer_for(g, m, B, H, W);
    size_t per = (size_t)3 * H * W;
    // a short batch runs padded with zeros, as on the CPU
    if (n < B) fill_cuda(ctx, a->in + (size_t)n * per, 0.0f, (size_t)(B - n) * per);
    cudaCheck(cudaMemcpyAsync(a->in, img, (size_t)n * per * sizeof(float), cudaMemcpyHostToDevice,
                              ctx->stream));
    const StepRng eval = {0, 0, 0, 0};  // training 0: z = mu, no dropout
    for (int j = 0; j < a->n_scales; j++) {
        InferScale* s = &a->sc[j];
        const float* in = a->in;
        if (j) {
            resize_bilinear_forward_cuda(ctx, s->img, a->in, B, 3, H, W, s->H, s->W, 0);
            in = s->img;
        }
        backbone_forward_cuda(ctx, &m->bb, g->params, &s->bb, in, a->ws);
        cm_forward_cuda(ctx, &m->cm, g->params, &s->cm, s->bb.h, j, &eval, a->ws);
    }
    const float* x = a->sc[0].cm.x;
    if (a->n_scales > 1) {
        const float* ins[CAGNET_MAX_SCALES] = {x};
        for (int j = 1; j < a->n_scales; j++) {
            InferScale* s = &a->sc[j];
            resize_bilinear_forward_cuda(ctx, s->x_up, s->cm.x, B, a->D, s->bb.Hf, s->bb.Wf,
                                         a->Hf, a->Wf, 0);
            ins[j] = s->x_up;
        }
        max_fuse_forward_cuda(ctx, a->x_max, a->which, ins, a->n_scales,
                              (size_t)B * a->D * a->Hf * a->Wf);
        x = a->x_max;
    }
    dc_forward_cuda(ctx, &m->dc, g->params, &a->dc, x, DC_ID_REAL, &eval, a->ws);
    cuda_memcpy_d2h(logits, a->dc.cls, (size_t)B * m->K * a->Hf * a->Wf * sizeof(float));
}

void device_infer_free(DeviceModel* g) { infer_release(g); }
