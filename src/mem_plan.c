// Memory plan: the sizes mirror src/cagnet.c alloc_acts and the modules'
// *_acts_alloc; tests/test_mem_plan.c checks them against an independent sum.
#include "mem_plan.h"

#include <stdio.h>
#include <string.h>

#include "common.h"

#define F sizeof(float)

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

static size_t optim_bytes(const Optimizer* o) {
    return o->span_n * F * (o->kind == OPTIM_ADAM ? 2 : 1);
}

// Floats per pixel of one module's activations (times B*H*W).
static size_t cm_per_pixel(const Cm* cm) {
    const CmConfig* c = &cm->cfg;
    // c; sel and s; p, mu, logvar, z and x
    return (size_t)c->n * c->Cc + 2 * (size_t)c->n + 5 * (size_t)c->D;
}
static size_t dc_per_pixel(const Dc* dc) {
    return (size_t)dc->cfg.hidden + 1 + (size_t)dc->cfg.K;  // t, gan, cls
}
static size_t gen_per_pixel(const Gen* g) {
    size_t n = (size_t)g->cfg.E + 2 * (size_t)g->cfg.D;  // in, fake
    for (int i = 0; i < g->cfg.n_hidden; i++) n += (size_t)g->cfg.widths[i];
    return n;
}

static size_t activation_bytes(const CagNet* m) {
    size_t B = (size_t)m->B, D = (size_t)m->D, acts = 0, dcls = 0;
    size_t px0 = B * m->sc[0].Hf * m->sc[0].Wf, n0 = px0 * D;  // scale 0's output size
    for (int j = 0; j < m->n_scales; j++) {
        const CagScale* s = &m->sc[j];
        size_t px = B * s->Hf * s->Wf;  // output pixels of this scale
        acts += s->bb.bytes;
        if (j) acts += B * 3 * s->H * s->W * F;          // resized input
        acts += px + px * F;                               // lbl, w
        acts += px * (cm_per_pixel(&m->cm) + dc_per_pixel(&m->dc) + 2 * D) * F;  // cm, dc, dx, dh
        if (j) acts += n0 * F;                             // x_up
        dcls = max_sz(dcls, px * m->K);
    }
    if (m->n_scales > 1)  // x_max, dx_max, which, dc_max
        acts += 2 * n0 * F + n0 + px0 * dc_per_pixel(&m->dc) * F;
    acts += px0 * m->E * F + n0 * F + px0;                   // emap, latent, y2
    acts += px0 * (gen_per_pixel(&m->gen) + dc_per_pixel(&m->dc)) * F;  // gen_acts, dc_fake
    acts += n0 * F + px0 * F + dcls * F + px0;               // dfake, dgan, dcls, valid
    acts += ((size_t)m->K + 1 + (size_t)m->K + px0) * sizeof(int);  // cls_start, cls_fill, cls_pos
    if (m->content_mmd) {  // every pixel of the global batch valid
        int world = m->dist ? m->dist->world : 1;
        size_t PD = (size_t)world * n0;
        acts += (2 * PD + max_sz(world > 1 ? 2 * PD : 0, PD)) * F;
    }
    return acts;
}

void mem_plan_cagnet(MemPlan* p, const CagNet* m, size_t conv_workspace_bytes) {
    memset(p, 0, sizeof *p);
    p->params = m->pt.total * F;
    p->grads = m->pt.total * F;
    p->optim = optim_bytes(&m->opt_e) + optim_bytes(&m->opt_d) + optim_bytes(&m->opt_g);
    p->activations = activation_bytes(m);
    p->workspace = m->ws_n * F;
    size_t pix = (size_t)m->B * m->H * m->W;
    p->batch = pix * 3 * F + pix;  // images and uint8 labels
    p->conv_workspace = conv_workspace_bytes;
    p->total = p->params + p->grads + p->optim + p->activations + p->workspace + p->batch +
               p->conv_workspace;
}

#define N_ITEMS 7
static void items(const MemPlan* p, const char** name, size_t* bytes) {
    const char* nm[N_ITEMS] = {"params", "grads", "optim", "activations", "workspace", "batch",
                               "conv_workspace"};
    size_t b[N_ITEMS] = {p->params, p->grads, p->optim, p->activations, p->workspace, p->batch,
                         p->conv_workspace};
    memcpy(name, nm, sizeof nm);
    memcpy(bytes, b, sizeof b);
}

static double gib(size_t b) { return (double)b / (1024.0 * 1024.0 * 1024.0); }

int mem_plan_check(const MemPlan* p, size_t free_bytes, size_t total_bytes, char* msg, size_t n) {
    size_t reserve = total_bytes / 20;
    if (p->total + reserve <= free_bytes) {
        if (n) msg[0] = '\0';
        return 0;
    }
    const char* name[N_ITEMS];
    size_t bytes[N_ITEMS];
    items(p, name, bytes);
    int big = 0;
    for (int i = 1; i < N_ITEMS; i++)
        if (bytes[i] > bytes[big]) big = i;
    if (n)
        snprintf(msg, n,
                 "training needs %.2f GiB of device memory (%.2f GiB planned + %.2f GiB reserved "
                 "for the CUDA context and NCCL) but %.2f GiB of %.2f GiB is free; the biggest "
                 "item is %s (%.2f GiB). Lower data.batch_size or data.crop_size, set "
                 "model.msc = false, or use a GPU with more memory",
                 gib(p->total + reserve), gib(p->total), gib(reserve), gib(free_bytes),
                 gib(total_bytes), name[big], gib(bytes[big]));
    return 1;
}

void mem_plan_log(const MemPlan* p, const char* device) {
    const char* name[N_ITEMS];
    size_t bytes[N_ITEMS];
    items(p, name, bytes);
    char line[512];
    int at = snprintf(line, sizeof line, "memory plan (%s):", device);
    for (int i = 0; i < N_ITEMS && at < (int)sizeof line; i++)
        at += snprintf(line + at, sizeof line - (size_t)at, " %s %.1f MiB,", name[i],
                       (double)bytes[i] / (1024.0 * 1024.0));
    if (at < (int)sizeof line)
        snprintf(line + at, sizeof line - (size_t)at, " total %.2f GiB", gib(p->total));
    log_info("%s", line);
}
