// Gradient sums over NCCL overlapped with the backward (device_model.h).
// Every rank launches the same buckets in the same order; the compute stream
// records an event when a prefix of the buckets is complete, the NCCL stream
// waits on it and sums, and the optimizer waits for the last sum.
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "device_model.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

// Polls every 50 ms: the last launched sum done -> disarm; an asynchronous
// NCCL error or a sum older than the limit -> abort the communicator (which
// frees ranks blocked in it) and the MPI job, so the batch system sees a
// failed job and requeues it instead of idling until the time limit.
static void* watchdog_main(void* arg) {
    GradSync* s = (GradSync*)arg;
    cudaSetDevice(s->device);  // the current device is per thread
    for (;;) {
        usleep(50000);
        pthread_mutex_lock(&s->lock);
        if (s->stop) {
            pthread_mutex_unlock(&s->lock);
            return NULL;
        }
        double t = now_s();
        if (s->wd.armed && !s->launching && cudaEventQuery(s->reduced) == cudaSuccess)
            watchdog_disarm(&s->wd, t);
        char err[512] = "";
        int async_error = nccl_comm_async_error(s->nc, err, sizeof err);
        WatchdogVerdict v = watchdog_check(&s->wd, t, async_error);
        if (v != WATCHDOG_OK) {
            char msg[1024];
            watchdog_describe(&s->wd, v, s->rank, t, err, msg, sizeof msg);
            log_error("%s", msg);
            nccl_comm_abort(s->nc);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        pthread_mutex_unlock(&s->lock);
    }
}

void grad_sync_init(GradSync* s, const DeviceOptions* o) {
    memset(s, 0, sizeof *s);
    s->first_bytes = o->first_bucket_bytes;
    s->bytes = o->bucket_bytes;
    s->dist = o->dist;
    s->rank = o->dist ? o->dist->rank : 0;
    if (!o->dist || o->dist->world == 1) return;  // one rank: nothing to sum
    cudaCheck(cudaGetDevice(&s->device));
    s->nc = nccl_comm_init(o->dist->comm);
    cudaCheck(cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking));
    cudaCheck(cudaEventCreateWithFlags(&s->grads_done, cudaEventDisableTiming));
    cudaCheck(cudaEventCreateWithFlags(&s->reduced, cudaEventDisableTiming));
    watchdog_init(&s->wd, o->collective_timeout_s);
    pthread_mutex_init(&s->lock, NULL);
    if (pthread_create(&s->thread, NULL, watchdog_main, s))
        ZS_FAIL("check the process/thread limits (ulimit -u)",
                "cannot start the NCCL watchdog thread");
}

void grad_sync_destroy(GradSync* s) {
    bucket_plan_free(&s->plan);
    if (!s->nc) return;
    // the last sums finish (or time out) while the watchdog still runs
    cudaCheck(cudaStreamSynchronize(s->stream));
    pthread_mutex_lock(&s->lock);
    s->stop = 1;
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    pthread_mutex_destroy(&s->lock);
    nccl_comm_destroy(s->nc);
    cudaCheck(cudaEventDestroy(s->grads_done));
    cudaCheck(cudaEventDestroy(s->reduced));
    cudaCheck(cudaStreamDestroy(s->stream));
}

void grad_sync_begin(GradSync* s, const CagNet* m, const UpdatePlan* plan) {
    if (!s->nc) return;
    size_t off[3], cnt[3];
    int n = cagnet_update_ranges(m, plan, off, cnt);
    bucket_plan_free(&s->plan);
    bucket_plan_build(&s->plan, &m->pt, off, cnt, n, s->first_bytes, s->bytes);
    s->launched = 0;
}

void grad_sync_ready(GradSync* s, CudaContext* ctx, float* grads, size_t done_from) {
    if (!s->nc) return;
    int last = bucket_plan_ready(&s->plan, done_from);
    if (last < s->launched) return;
    cudaCheck(cudaEventRecord(s->grads_done, ctx->stream));
    cudaCheck(cudaStreamWaitEvent(s->stream, s->grads_done, 0));
    // Armed before the NCCL calls, which can block (connection setup with a
    // dead peer): they run without the lock so the watchdog can still fire,
    // and `launching` keeps it from disarming on the previous `reduced`.
    pthread_mutex_lock(&s->lock);
    for (int i = s->launched; i <= last; i++) {
        char what[128];
        snprintf(what, sizeof what, "all-reduce of gradient bucket %d/%d (%.1f MiB)", i + 1,
                 s->plan.n, (double)s->plan.b[i].count * 4.0 / 1048576.0);
        watchdog_arm(&s->wd, what, now_s());
    }
    s->launching = 1;
    pthread_mutex_unlock(&s->lock);
    for (int i = s->launched; i <= last; i++) {
        const GradBucket* b = &s->plan.b[i];
        nccl_allreduce_sum_stream(s->nc, grads + b->offset, b->count, s->stream);
        s->dist->allreduce_calls++;
        s->dist->allreduce_bytes += b->count * sizeof(float);
    }
    pthread_mutex_lock(&s->lock);
    cudaCheck(cudaEventRecord(s->reduced, s->stream));
    s->launching = 0;
    pthread_mutex_unlock(&s->lock);
    s->launched = last + 1;
}

void grad_sync_finish(GradSync* s, CudaContext* ctx, float* grads) {
    if (!s->nc) return;
    grad_sync_ready(s, ctx, grads, 0);
    cudaCheck(cudaStreamWaitEvent(ctx->stream, s->reduced, 0));
}
