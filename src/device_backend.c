#include "device_backend.h"

#include <math.h>
#include <string.h>

#include "common.h"
#include "mem_plan.h"

static const DeviceBackend* registered;
static const DeviceRun* active;

const DeviceRun* device_run_active(void) { return active; }

void device_backend_register(const DeviceBackend* b) { registered = b; }

const DeviceBackend* device_backend_get(void) { return registered; }

int device_find_shared(const unsigned char* uuids, int n, int me) {
    for (int i = 0; i < n; i++)
        if (i != me && !memcmp(uuids + (size_t)i * 16, uuids + (size_t)me * 16, 16)) return i;
    return -1;
}

// 1 when this rank can and should use the backend.
static int want_device(const char* choice, const DeviceBackend* be) {
    if (!strcmp(choice, "cpu")) return 0;
    int count = be ? be->device_count() : 0;
    if (!strcmp(choice, "auto")) return count > 0;
    if (!be)
        ZS_FAIL("rebuild with CUDA (cmake -DZSSEG_CUDA=ON; needs nvcc, cuDNN and NCCL) or set "
                "run.device = cpu",
                "run.device = cuda, but this zsseg was built without the CUDA backend");
    if (count == 0)
        ZS_FAIL("set run.device = cpu (or auto), or check `nvidia-smi` and CUDA_VISIBLE_DEVICES "
                "on this node",
                "run.device = cuda, but no CUDA GPU is visible on this node");
    return 1;
}

void device_run_select(DeviceRun* dv, const Config* cfg, Dist* d) {
    memset(dv, 0, sizeof *dv);
    const char* choice = config_get_string(cfg, "run.device");
    int use = want_device(choice, device_backend_get());
    int lo = use, hi = use;
    mpiCheck(MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_INT, MPI_MIN, d->comm));
    mpiCheck(MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_INT, MPI_MAX, d->comm));
    // only auto gets here mixed (cuda stopped on a rank without a GPU): CUDA
    // on every rank or on none
    if (lo != hi) {
        if (d->rank == 0)
            log_warn("run.device = auto: some ranks see no GPU, so every rank trains on the CPU "
                     "(set run.device = cuda to stop instead)");
        use = 0;
    }
    if (!use) {
        snprintf(dv->desc, sizeof dv->desc, "cpu");
        return;
    }
    dv->be = device_backend_get();
    dv->be->select(d, config_get_bool(cfg, "run.allow_gpu_sharing"), dv->desc, sizeof dv->desc);
    log_info("run.device = %s: %s on every rank (rank 0: %s)", choice, dv->be->name, dv->desc);
}

const LoaderAllocator* device_run_batch_allocator(const DeviceRun* dv) {
    return dv->be ? &dv->be->pinned : NULL;
}

void device_run_start(DeviceRun* dv, const Config* cfg, Dist* d, CagNet* m) {
    MemPlan plan;
    const int eval_b = config_get_int(cfg, "eval.batch_size");
    const int warp = config_get_int(cfg, "data.warp_size");
    if (!dv->be) {
        mem_plan_cagnet(&plan, m, 0);
        mem_plan_eval(&plan, m, eval_b, warp);
        if (d->rank == 0) mem_plan_log(&plan, "cpu, per rank");
        mem_plan_check_host(&plan, d->local_world);  // the node's memory, shared by its ranks
        return;
    }
    mem_plan_cagnet(&plan, m, DEVICE_CONV_WORKSPACE_BYTES);
    mem_plan_eval(&plan, m, eval_b, warp);  // the CUDA mirror lays these out on the device
    if (d->rank == 0) mem_plan_log(&plan, dv->be->name);
    size_t free_b = 0, total_b = 0;
    dv->be->memory(&free_b, &total_b);
    char msg[1024];
    if (mem_plan_check(&plan, free_b, total_b, msg, sizeof msg))
        ZS_FAIL("see the memory plan above", "rank %d: %s", d->rank, msg);
    DeviceOptions o = {config_get_bool(cfg, "run.tf32"),
                       config_get_bool(cfg, "run.deterministic"),
                       (size_t)(config_get_float(cfg, "dist.first_bucket_mb") * 1048576.0),
                       (size_t)(config_get_float(cfg, "dist.bucket_mb") * 1048576.0),
                       config_get_float(cfg, "dist.collective_timeout_s"), d};
    dv->g = dv->be->model_create(m, &o);
    active = dv;
}

void device_run_step1(DeviceRun* dv, CagNet* m, const UpdatePlan* plan, const float* img,
                      const uint8_t* labels, const float* weights, const StepRng* rng,
                      const Step1Mode* mode, Step1Losses* out) {
    if (dv->g)
        dv->be->step1(dv->g, m, plan, img, labels, weights, rng, mode, out);
    else
        cagnet_step1(m, img, labels, weights, rng, mode, out);
}

float device_run_step2(DeviceRun* dv, CagNet* m, const UpdatePlan* plan, const StepRng* rng) {
    return dv->g ? dv->be->step2(dv->g, m, plan, rng) : cagnet_step2(m, rng);
}

double device_run_update(DeviceRun* dv, CagNet* m, const UpdatePlan* plan, Dist* d,
                         size_t bucket_floats) {
    if (dv->g) {
        dv->be->reduce_and_apply(dv->g, m, plan);
        return 0.0;
    }
    size_t off[3], cnt[3];
    int nr = cagnet_update_ranges(m, plan, off, cnt);
    dist_allreduce_ranges(d, m->grads, off, cnt, nr, bucket_floats, 1.0f);
    double sq = 0.0;
    for (int r = 0; r < nr; r++) {
        const float* g = m->grads + off[r];
#pragma omp parallel for schedule(static) reduction(+ : sq)
        for (size_t i = 0; i < cnt[r]; i++) sq += (double)g[i] * g[i];
    }
    if (isfinite(sq)) cagnet_apply(m, plan);
    return sq;
}

void device_run_download(DeviceRun* dv, CagNet* m) {
    if (dv->g) dv->be->download(dv->g, m);
}

void device_run_close(DeviceRun* dv) {
    if (dv == active) active = NULL;
    if (dv->g) dv->be->model_destroy(dv->g);
    memset(dv, 0, sizeof *dv);
}

void device_run_restart(DeviceRun* dv, const Config* cfg, Dist* d, CagNet* m) {
    if (!dv->g) return;
    active = NULL;
    dv->be->model_destroy(dv->g);
    dv->g = NULL;
    device_run_start(dv, cfg, d, m);
}
