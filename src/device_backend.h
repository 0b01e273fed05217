// How training reaches an accelerator without the core library linking one:
// the CUDA library fills a DeviceBackend and main() registers it
// (cuda/train_cuda.cu). The core only sees this table, so CPU-only builds and
// the CPU tests need no CUDA libraries, and run.device = cuda in such a build
// is a clear error instead of a link failure.
//
// A DeviceModel is the device-resident copy of a host CagNet: parameters,
// gradients, optimizer state and activations live on the GPU; the host CagNet
// keeps the settings, the parameter table and (after device_download) the
// values that checkpoints and the divergence check read.
#ifndef ZSSEG_DEVICE_BACKEND_H
#define ZSSEG_DEVICE_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "cagnet.h"
#include "config.h"
#include "dist.h"
#include "loader.h"

typedef struct DeviceModel DeviceModel;

typedef struct {
    int tf32, deterministic;         // run.tf32, run.deterministic
    size_t first_bucket_bytes;       // dist.first_bucket_mb
    size_t bucket_bytes;             // dist.bucket_mb
    double collective_timeout_s;     // dist.collective_timeout_s (watchdog)
    Dist* dist;                      // ranks (NCCL communicator built over d->comm)
} DeviceOptions;

typedef struct {
    const char* name;  // "cuda"
    // Devices visible to this process (0 on any error: never fails).
    int (*device_count)(void);
    // One device per rank: device local_rank % count, where local ranks come
    // from MPI_Comm_split_type(SHARED). Ranks of a node that end up on the
    // same physical GPU (compared by UUID, so --gpus-per-task=1 is fine) are
    // an error unless allow_sharing. Collective. Writes a one-line
    // description ("NVIDIA H100 80GB HBM3, sm_90, 79.2 GiB") into desc.
    void (*select)(const Dist* d, int allow_sharing, char* desc, size_t n);
    // Page-locked host memory for the loader's batch buffers, so the batch
    // copies to the device run asynchronously straight from them.
    LoaderAllocator pinned;
    // Free and total memory of the selected device, bytes.
    void (*memory)(size_t* free_bytes, size_t* total_bytes);
    // Upload m (parameters, optimizer state) and allocate everything a step
    // needs; the caller has checked the memory plan first.
    DeviceModel* (*model_create)(CagNet* m, const DeviceOptions* o);
    // cagnet_step1 / cagnet_step2 on the device; img, labels and weights are
    // host memory. plan says which gradient ranges the step's update sums over
    // ranks: their buckets start reducing (NCCL, own stream) as soon as the
    // backward has completed them.
    void (*step1)(DeviceModel* g, CagNet* m, const UpdatePlan* plan, const float* img,
                  const uint8_t* labels, const float* weights, const StepRng* rng,
                  const Step1Mode* mode, Step1Losses* out);
    float (*step2)(DeviceModel* g, CagNet* m, const UpdatePlan* plan, const StepRng* rng);
    // Launch the buckets the step has not, wait for all, apply the plan's
    // updates (m's optimizer step counters advance as on the CPU).
    void (*reduce_and_apply)(DeviceModel* g, CagNet* m, const UpdatePlan* plan);
    // cag_infer_forward on the device with its current parameters: logits
    // (B, K, Hf, Wf) to host memory for n <= B images (B, 3, H, W) in host
    // memory; activations for (B, H, W) are laid out on first use (again when
    // the size changes) in their own device allocation.
    void (*infer)(DeviceModel* g, const CagNet* m, const float* img, int n, int B, int H, int W,
                  float* logits);
    // Device -> host m (parameters and optimizer state): before checkpoints
    // and the divergence check read them (evaluation runs on the device).
    void (*download)(DeviceModel* g, CagNet* m);
    void (*model_destroy)(DeviceModel* g);
} DeviceBackend;

// NULL registers nothing (a CPU-only build).
void device_backend_register(const DeviceBackend* b);
const DeviceBackend* device_backend_get(void);  // NULL when none registered

// Node-local ranks' GPU UUIDs (n, 16 bytes each): another rank using the same
// GPU as rank `me`, or -1. (Ranks sharing a GPU work for kernels, not for
// NCCL, and halve each other's speed: refused unless run.allow_gpu_sharing.)
int device_find_shared(const unsigned char* uuids, int n, int me);

// ---------------------------------------------------------------- a training run's device

// cuDNN's workspace in the memory plan: the context grows it per conv shape,
// this is the budget assumed when checking memory before training.
#define DEVICE_CONV_WORKSPACE_BYTES ((size_t)512 << 20)

typedef struct DeviceRun {
    const DeviceBackend* be;  // NULL: the CPU reference
    DeviceModel* g;
    char desc[256];           // "cpu" or the GPU's description
} DeviceRun;

// Collective, before any data is read: resolve run.device (auto: CUDA when
// this build has it and a GPU is visible on every rank; cuda: required, with
// a clear error when the build or the machine lacks it) and select one GPU per
// rank.
void device_run_select(DeviceRun* dv, const Config* cfg, Dist* d);
// The loader's batch allocator for the run's device: page-locked on a GPU,
// NULL (aligned malloc) on the CPU.
const LoaderAllocator* device_run_batch_allocator(const DeviceRun* dv);
// Log the memory plan of m and, on a GPU, stop before training when it does
// not fit the device's free memory; then upload m.
void device_run_start(DeviceRun* dv, const Config* cfg, Dist* d, CagNet* m);
// One step on the run's device: the backend's step, or the CPU reference
// (cagnet_step1 / cagnet_step2). Then the update: on the CPU the plan's
// ranges are summed over ranks with MPI (buckets of bucket_floats) and
// cagnet_apply runs; on a GPU the NCCL sums already started in the backward.
void device_run_step1(DeviceRun* dv, CagNet* m, const UpdatePlan* plan,
                      const float* img,       // (B, 3, H, W)
                      const uint8_t* labels,  // (B, H, W)
                      const float* weights,   // (B, H, W) CE weights, or NULL (all 1)
                      const StepRng* rng, const Step1Mode* mode, Step1Losses* out);
float device_run_step2(DeviceRun* dv, CagNet* m, const UpdatePlan* plan, const StepRng* rng);
// Sum the gradients of the plan's ranges over d and apply the update.
// Returns the squared norm of the summed gradient (the same on every rank);
// when it is not finite the update is skipped, so the parameters stay the
// last finite ones. The GPU path does not measure it and returns 0.
double device_run_update(DeviceRun* dv, CagNet* m, const UpdatePlan* plan, Dist* d,
                         size_t bucket_floats);
// The run whose device model is up (device_run_start) in this process, or
// NULL: inference (infer.h) runs there, so evaluation and self-training
// labelling during a GPU run use the GPU.
const DeviceRun* device_run_active(void);
// The device's parameters and optimizer state into m (no-op on the CPU):
// before anything on the host reads them.
void device_run_download(DeviceRun* dv, CagNet* m);
void device_run_close(DeviceRun* dv);
// After m's batch changed (cagnet_set_batch): the device copy rebuilt for it
// (m must hold the current parameters and state: device_run_download first).
void device_run_restart(DeviceRun* dv, const Config* cfg, Dist* d, CagNet* m);

#endif  // ZSSEG_DEVICE_BACKEND_H
