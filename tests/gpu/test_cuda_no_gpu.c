// The CUDA build on a machine without a GPU (CI): the binary starts,
// cuda_device_count() says 0 instead of failing, and asking for a GPU anyway
// stops with exit code 1 and a hint to use the CPU, not with a crash.
// With a GPU, local ranks beyond the GPU count wrap around onto GPU 0 (same
// UUID: the trainer's sharing check, device_find_shared, sees it).
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testing.h"
#include "zsseg_cuda.h"

static int g_arg;

// Each CUDA call runs in a fresh child: a child cannot use CUDA once its
// parent initialised it, so the parent itself never calls CUDA.
static void probe_count(void) {
    fprintf(stderr, "%d %d", cuda_device_count(), cuda_device_count());
}
// Prints the selected device index and its UUID's first bytes.
static void select_device(void) {
    unsigned char uuid[16];
    char desc[256];
    int dev = cuda_device_select(g_arg, uuid, desc, sizeof desc);
    fprintf(stderr, "%d %02x%02x%02x%02x", dev, uuid[0], uuid[1], uuid[2], uuid[3]);
}
static void create_context(void) { cuda_context_create(0, 0); }

int main(void) {
    char err[4096];
    int count = -1, again = -1;
    int rc = t_run_child(probe_count, 2, err, sizeof err);
    CHECK(rc == 0, "cuda_device_count() crashed or failed: exit %d (%s)", rc, err);
    CHECK(sscanf(err, "%d %d", &count, &again) == 2, "no count printed: %s", err);
    CHECK(count >= 0, "cuda_device_count() = %d", count);
    CHECK(again == count, "second cuda_device_count() = %d, first %d", again, count);

    if (count == 0) {
        printf("no GPU visible: checking the CPU-only behaviour\n");
        g_arg = 0;
        rc = t_run_child(select_device, 2, err, sizeof err);
        CHECK(rc == 1, "cuda_device_select without GPU: exit %d, want 1", rc);
        CHECK(strstr(err, "run.device = cpu") != NULL, "no 'run.device = cpu' hint in: %s", err);
        // cudaStreamCreate fails first: the runtime's error plus the same hint
        rc = t_run_child(create_context, 2, err, sizeof err);
        CHECK(rc == 1, "cuda_context_create without GPU: exit %d, want 1", rc);
        CHECK(strstr(err, "HINT") && strstr(err, "run.device = cpu"), "no hint in: %s", err);
    } else {
        printf("%d GPU(s) visible: checking the wrap-around\n", count);
        char first[64], wrapped[64];
        g_arg = 0;
        rc = t_run_child(select_device, 2, first, sizeof first);
        CHECK(rc == 0, "select local rank 0: exit %d (%s)", rc, first);
        g_arg = count;  // one more local rank than GPUs
        rc = t_run_child(select_device, 2, wrapped, sizeof wrapped);
        CHECK(rc == 0, "select local rank %d: exit %d (%s)", count, rc, wrapped);
        CHECK(strcmp(first, wrapped) == 0, "local rank %d got '%s', want GPU 0's '%s'", count,
              wrapped, first);
    }
    return t_report("cuda_no_gpu_behaviour");
}
