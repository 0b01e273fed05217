// The device memory plan: what training a CagNet holds on one accelerator,
// computed on the host before anything is allocated, so a run that cannot fit
// stops at startup with the fix instead of an out-of-memory error mid-step.
#ifndef ZSSEG_MEM_PLAN_H
#define ZSSEG_MEM_PLAN_H

#include <stddef.h>

#include "cagnet.h"

typedef struct {
    size_t params, grads, optim, activations, workspace, batch, conv_workspace, total;  // bytes
} MemPlan;

// What training CagNet m holds on one device: parameters and gradients (pt.total floats each),
// optimizer state (the three optimizers' m/v spans: m->opt_e/opt_d/opt_g .span_n, v when Adam),
// activations (every buffer src/cagnet.c alloc_acts allocates for m's B, H, W and scales: backbone
// acts (BackboneActs.bytes of the host model's m->sc[j].bb), CM/DC/GEN acts from their dims, dx, dh,
// x_up, x_max, which, dx_max, dc_max, emap, latent, y2, dfake, dgan, dcls, valid, label maps, the
// MMD row buffers sized for all pixels), the shared module workspace (m->ws_n floats), the batch
// (images + labels, once on the device and once pinned on the host: count the device copy), and
// conv_workspace_bytes (cuDNN, passed in). total = sum.
// The MMD rows (loss.content = mmd) are X, Y and dX (plus the gather area on
// several ranks, m->dist) for every pixel of the global batch; the pairwise
// kernel workspace, quadratic in the largest class's pixel count and so
// data-dependent, is not included.
void mem_plan_cagnet(MemPlan* p, const CagNet* m, size_t conv_workspace_bytes);
// 0 when total + reserve fits free_bytes (reserve = 5% of total_bytes for the CUDA context and
// NCCL buffers); otherwise 1 and msg gets an actionable message: needed vs free in GiB, the biggest
// item, and the fix (lower data.batch_size or data.crop_size, model.msc = false, or a GPU with more
// memory).
int mem_plan_check(const MemPlan* p, size_t free_bytes, size_t total_bytes, char* msg, size_t n);
// One log_info line with every item plus the total, e.g.
// "memory plan (cuda): params 170.3 MiB, grads 170.3 MiB, ..., total 9.71 GiB".
void mem_plan_log(const MemPlan* p, const char* device);

#endif  // ZSSEG_MEM_PLAN_H
