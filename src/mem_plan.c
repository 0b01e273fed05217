// Memory plan: the sizes mirror src/cagnet.c alloc_acts and the modules'
// *_acts_alloc; tests/test_mem_plan.c checks them against an independent sum.
#include "mem_plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "infer.h"

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

// backbone_acts_alloc_with's sizes without memory: a stand-in address (never written)
static char no_memory[64];
static void* count_only(void* ctx, size_t bytes) {
    (void)ctx, (void)bytes;
    return no_memory;
}

void mem_plan_eval(MemPlan* p, const CagNet* m, int eval_batch, int warp) {
    CagInfer a;
    cag_infer_layout(&a, m, eval_batch, warp, warp);
    size_t B = (size_t)eval_batch, e = 0;
    size_t px0 = B * a.Hf * a.Wf, n0 = px0 * (size_t)m->D;
    for (int j = 0; j < a.n_scales; j++) {
        const InferScale* s = &a.sc[j];
        BackboneActs bb;
        backbone_acts_alloc_with(&bb, &m->bb, eval_batch, s->H, s->W, count_only, NULL);
        free(bb.blocks);
        e += bb.bytes;
        if (j) e += B * 3 * s->H * s->W * F + n0 * F;  // resized input, x_up
        e += B * bb.Hf * bb.Wf * cm_per_pixel(&m->cm) * F;
    }
    if (a.n_scales > 1) e += n0 * F + n0;                 // x_max, which
    e += px0 * dc_per_pixel(&m->dc) * F;                   // dc (the logits in dc.cls)
    size_t img = B * (size_t)warp * warp;
    e += img * 3 * F + a.ws_n * F;                         // padded input, workspace
    e += img + px0;                                        // evaluate's scoring workspace
    e += img * 3 * F + img;                                // the test loader's batch
    p->eval += e;
    p->total += e;
}

#define N_ITEMS 8
static void items(const MemPlan* p, const char** name, size_t* bytes) {
    const char* nm[N_ITEMS] = {"params", "grads",          "optim", "activations",
                               "workspace", "batch", "conv_workspace", "eval"};
    size_t b[N_ITEMS] = {p->params,    p->grads, p->optim,          p->activations,
                         p->workspace, p->batch, p->conv_workspace, p->eval};
    memcpy(name, nm, sizeof nm);
    memcpy(bytes, b, sizeof b);
}

static double gib(size_t b) { return (double)b / (1024.0 * 1024.0 * 1024.0); }

static int biggest(const MemPlan* p, const char** name_out, size_t* bytes_out) {
    const char* name[N_ITEMS];
    size_t bytes[N_ITEMS];
    items(p, name, bytes);
    int big = 0;
    for (int i = 1; i < N_ITEMS; i++)
        if (bytes[i] > bytes[big]) big = i;
    *name_out = name[big];
    *bytes_out = bytes[big];
    return big;
}

// ---------------------------------------------------------------- host memory
// The first number after key in file path (key NULL: the file's first token), in
// bytes times mult; 0 when absent or "max".
static size_t read_number(const char* path, const char* key, size_t mult) {
    FILE* fp = fopen(path, "r");
    if (!fp) return 0;
    char line[256];
    size_t v = 0;
    size_t klen = key ? strlen(key) : 0;
    while (fgets(line, sizeof line, fp)) {
        if (key && (strncmp(line, key, klen) != 0 || (line[klen] != ' ' && line[klen] != ':')))
            continue;
        const char* q = line + klen;
        while (*q == ' ' || *q == ':' || *q == '\t') q++;
        char* end = NULL;
        unsigned long long x = strtoull(q, &end, 10);
        if (end != q) v = (size_t)x * mult;
        break;
    }
    fclose(fp);
    return v;
}

static size_t min_known(size_t a, size_t b) { return !a ? b : !b ? a : a < b ? a : b; }

size_t mem_host_available(const char** source) {
    const char* env = getenv("ZSSEG_MEM_AVAILABLE");
    if (env && *env) {
        if (source) *source = "ZSSEG_MEM_AVAILABLE";
        return (size_t)strtoull(env, NULL, 10);
    }
    size_t avail = read_number("/proc/meminfo", "MemAvailable", 1024);
    const char* src = "MemAvailable in /proc/meminfo";
    size_t room = 0;
    size_t max2 = read_number("/sys/fs/cgroup/memory.max", NULL, 1);  // 0 for "max"
    if (max2) {
        size_t cur = read_number("/sys/fs/cgroup/memory.current", NULL, 1);
        size_t cache = read_number("/sys/fs/cgroup/memory.stat", "inactive_file", 1);
        room = max2 > cur ? max2 - cur + cache : cache;
        if (room > max2) room = max2;
        if (room && (!avail || room < avail)) src = "the cgroup's memory.max";
    } else {
        size_t lim = read_number("/sys/fs/cgroup/memory/memory.limit_in_bytes", NULL, 1);
        if (lim && lim < ((size_t)1 << 60)) {  // "no limit" reads as a huge number
            size_t use = read_number("/sys/fs/cgroup/memory/memory.usage_in_bytes", NULL, 1);
            size_t cache =
                read_number("/sys/fs/cgroup/memory/memory.stat", "total_inactive_file", 1);
            room = lim > use ? lim - use + cache : cache;
            if (room > lim) room = lim;
            if (room && (!avail || room < avail)) src = "the cgroup's memory.limit_in_bytes";
        }
    }
    avail = min_known(avail, room);
    if (source) *source = src;
    return avail;
}

int mem_plan_check_host_bytes(const MemPlan* p, size_t avail_bytes, int local_ranks,
                              const char* source, char* msg, size_t n) {
    if (local_ranks < 1) local_ranks = 1;
    size_t per_rank = avail_bytes / (size_t)local_ranks;
    if (p->total <= per_rank) {
        if (n) msg[0] = '\0';
        return 0;
    }
    const char* name;
    size_t bytes;
    biggest(p, &name, &bytes);
    const char* fix = strcmp(name, "eval") == 0
                          ? "lower eval.batch_size (or data.warp_size)"
                          : "lower data.crop_size or data.batch_size (or set model.msc = false)";
    if (n)
        snprintf(msg, n,
                 "the memory plan needs %.2f GiB of host memory per rank (training %.2f GiB, "
                 "evaluation %.2f GiB) but %.2f GiB is available per rank (%.2f GiB from %s, "
                 "%d rank(s) on this node); the biggest item is %s (%.2f GiB): %s",
                 gib(p->total), gib(p->total - p->eval), gib(p->eval), gib(per_rank),
                 gib(avail_bytes), source ? source : "the system", local_ranks, name, gib(bytes),
                 fix);
    return 1;
}

void mem_plan_check_host(const MemPlan* p, int local_ranks) {
    const char* source = NULL;
    size_t avail = mem_host_available(&source);
    if (!avail) return;  // unknown: nothing to compare with
    char msg[1024];
    if (mem_plan_check_host_bytes(p, avail, local_ranks, source, msg, sizeof msg))
        ZS_FAIL("see the memory plan above; ZSSEG_MEM_AVAILABLE=bytes overrides the available "
                "memory",
                "%s", msg);
}

int mem_plan_check(const MemPlan* p, size_t free_bytes, size_t total_bytes, char* msg, size_t n) {
    size_t reserve = total_bytes / 20;
    if (p->total + reserve <= free_bytes) {
        if (n) msg[0] = '\0';
        return 0;
    }
    const char* big_name;
    size_t big_bytes;
    biggest(p, &big_name, &big_bytes);
    if (n)
        snprintf(msg, n,
                 "training needs %.2f GiB of device memory (%.2f GiB planned + %.2f GiB reserved "
                 "for the CUDA context and NCCL) but %.2f GiB of %.2f GiB is free; the biggest "
                 "item is %s (%.2f GiB). Lower data.batch_size or data.crop_size, set "
                 "model.msc = false, or use a GPU with more memory",
                 gib(p->total + reserve), gib(p->total), gib(reserve), gib(free_bytes),
                 gib(total_bytes), big_name, gib(big_bytes));
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
