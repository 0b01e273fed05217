// The device memory plan: what training a CagNet holds on one accelerator,
// computed on the host before anything is allocated, so a run that cannot fit
// stops at startup with the fix instead of an out-of-memory error mid-step.
#ifndef ZSSEG_MEM_PLAN_H
#define ZSSEG_MEM_PLAN_H

#include <stddef.h>

#include "cagnet.h"

typedef struct {
    size_t params, grads, optim, activations, workspace, batch, conv_workspace;  // bytes
    size_t eval;   // the evaluation buffers (mem_plan_eval; 0 until it is called)
    size_t total;  // the sum
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
// Adds the evaluation buffers (evaluate_run during training: what src/infer.c
// cag_infer_init allocates for eval_batch images of warp x warp, evaluate's
// scoring workspace and the test loader's batch) to p->eval and p->total.
void mem_plan_eval(MemPlan* p, const CagNet* m, int eval_batch, int warp);
// Host memory this rank may use, in bytes: the least of MemAvailable
// (/proc/meminfo) and the cgroup's room (v2 memory.max - memory.current, v1
// memory.limit_in_bytes - memory.usage_in_bytes, reclaimable page cache
// added back), or ZSSEG_MEM_AVAILABLE=bytes when set (tests). 0 when none can be read;
// *source (when not NULL) names where the number came from.
size_t mem_host_available(const char** source);
// 0 when p->total fits avail_bytes / local_ranks (the node's memory shared by the ranks on
// it); otherwise 1 and msg gets the sizes (needed, available per rank and on the node, the
// biggest item) and the config key to lower: eval.batch_size (or data.warp_size) when the
// evaluation buffers are the biggest item, else data.crop_size / data.batch_size.
int mem_plan_check_host_bytes(const MemPlan* p, size_t avail_bytes, int local_ranks,
                              const char* source, char* msg, size_t n);
// mem_plan_check_host_bytes with mem_host_available(); stops the run (ZS_FAIL) when the plan
// does not fit. Nothing is checked when the available memory cannot be read.
void mem_plan_check_host(const MemPlan* p, int local_ranks);
// 0 when total + reserve fits free_bytes (reserve = 5% of total_bytes for the CUDA context and
// NCCL buffers); otherwise 1 and msg gets an actionable message: needed vs free in GiB, the biggest
// item, and the fix (lower data.batch_size or data.crop_size, model.msc = false, or a GPU with more
// memory).
int mem_plan_check(const MemPlan* p, size_t free_bytes, size_t total_bytes, char* msg, size_t n);
// One log_info line with every item plus the total, e.g.
// "memory plan (cuda): params 170.3 MiB, grads 170.3 MiB, ..., total 9.71 GiB".
void mem_plan_log(const MemPlan* p, const char* device);

#endif  // ZSSEG_MEM_PLAN_H
