// The device copy of a CagNet (src/device_backend.h) as the .cu files see it:
// the CPU CagNet's activation structs with device pointers, the parameter,
// gradient and optimizer buffers, and the gradient synchroniser.
#ifndef ZSSEG_DEVICE_MODEL_H
#define ZSSEG_DEVICE_MODEL_H

#include <pthread.h>

#include "cuda_common.h"
extern "C" {
#include "buckets.h"
#include "device_backend.h"
#include "infer.h"
#include "watchdog.h"
}

// Gradient all-reduce over NCCL on its own stream, bucket by bucket in the
// plan's order (the same on every rank: NCCL needs one collective order), each
// bucket launched once the backward has completed it. A watchdog thread aborts
// the job when a collective errors or outlives dist.collective_timeout_s.
struct GradSync {
    NcclComm* nc;        // NULL with one rank: nothing to sum
    cudaStream_t stream;
    cudaEvent_t grads_done, reduced;
    BucketPlan plan;
    int launched;        // buckets of plan already queued
    int launching;       // NCCL calls in progress that `reduced` does not cover yet
    size_t first_bytes, bytes;
    Watchdog wd;
    pthread_mutex_t lock;
    pthread_t thread;
    int stop;            // tells the watchdog thread to end
    int rank, device;
    Dist* dist;          // allreduce accounting (calls, bytes)
};

struct DeviceScale {
    float* img;    // (B, 3, H, W) resized input (scales > 0)
    uint8_t* lbl;  // (B, Hf, Wf) labels at this output size
    float* w;      // (B, Hf, Wf) CE weights at this output size (weighted steps only)
    BackboneActs bb;
    CmActs cm;
    DcActs dc;
    float *dx, *dh;  // (B, D, Hf, Wf)
    float* x_up;     // (B, D, Hf0, Wf0) (scales > 0)
};

struct DeviceModel {
    CudaContext* ctx;
    DeviceArena* arena;
    float *params, *grads, *ws;  // (pt.total), (pt.total), (m->ws_n)
    float *opt_m[3], *opt_v[3];  // optimizer state of opt_e, opt_d, opt_g (span_n each)
    float* emb;                  // (K, E)
    float* img;                  // (B, 3, H, W) the batch
    uint8_t* pinned_lbl;         // every scale's label map, then the valid mask (host staging)
    float* pinned_w;             // every scale's CE weights (host staging)
    cudaStream_t copy;           // host -> device batch copies, beside the compute stream
    cudaEvent_t img_ready, lbl_ready;
    DeviceScale sc[CAGNET_MAX_SCALES];
    float *x_max, *dx_max;       // (B, D, Hf0, Wf0)
    uint8_t* which;
    DcActs dc_max, dc_fake;
    GenActs gen_acts;
    float *emap, *latent, *dfake, *dgan, *dcls;
    uint8_t *y2, *valid;
    float* rows;     // (3, world*B*Hf0*Wf0, D) MMD X, Y, dX for every pixel of the global batch
    float* mmd_ws;   // MMD pairwise workspace: data-dependent, outside the arena and the plan
    size_t mmd_ws_n;
    int* pos;        // (B*Hf0*Wf0) MMD row pixels, device
    GradSync sync;
    CagInfer inf;            // eval-mode forward (infer_cuda.cu), device buffers
    DeviceArena* inf_arena;  // its allocation, NULL until the first inference
};

// nccl.cu, for the gradient synchroniser: a sum on any stream, the
// communicator's asynchronous error (1 and a message when there is one), abort.
void nccl_allreduce_sum_stream(NcclComm* nc, float* buf, size_t n, cudaStream_t stream);
int nccl_comm_async_error(NcclComm* nc, char* msg, size_t n);
void nccl_comm_abort(NcclComm* nc);

// cagnet_cuda.cu
DeviceModel* device_model_create(CagNet* m, const DeviceOptions* o);
void device_model_destroy(DeviceModel* g);
void cagnet_step1_cuda(DeviceModel* g, CagNet* m, const UpdatePlan* plan, const float* img,
                       const uint8_t* labels, const float* weights, const StepRng* rng,
                       const Step1Mode* mode, Step1Losses* out);
float cagnet_step2_cuda(DeviceModel* g, CagNet* m, const UpdatePlan* plan, const StepRng* rng);
void cagnet_apply_cuda(DeviceModel* g, CagNet* m, const UpdatePlan* plan);
void device_model_download(DeviceModel* g, CagNet* m);

// infer_cuda.cu: the DeviceBackend's infer, and its release
void device_infer(DeviceModel* g, const CagNet* m, const float* img, int n, int B, int H, int W,
                  float* logits);
void device_infer_free(DeviceModel* g);

// grad_sync.cu
void grad_sync_init(GradSync* s, const DeviceOptions* o);
void grad_sync_destroy(GradSync* s);
// New step: the buckets of the plan's ranges (cagnet_update_ranges).
void grad_sync_begin(GradSync* s, const CagNet* m, const UpdatePlan* plan);
// The backward has completed every gradient at offsets >= done_from (queued
// on ctx's stream): launch the buckets that are now complete.
void grad_sync_ready(GradSync* s, CudaContext* ctx, float* grads, size_t done_from);
// Launch the rest and make ctx's stream wait for every sum.
void grad_sync_finish(GradSync* s, CudaContext* ctx, float* grads);

#endif  // ZSSEG_DEVICE_MODEL_H
