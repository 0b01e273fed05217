// The CUDA build on a machine without a GPU (CI): the binary starts,
// cuda_device_count() says 0 instead of failing, and asking for a GPU anyway
// stops with exit code 1 and a hint to use the CPU, not with a crash.
// With a GPU, the one-rank-per-GPU rule of cuda_device_select is checked instead.
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testing.h"
#include "zsseg_cuda.h"

static int g_arg;

// Run fn in a child with stderr captured into err; returns its exit status,
// or -1 when it did not exit normally (crash, signal).
static int run_captured(void (*fn)(void), char* err, size_t cap) {
    int fds[2];
    if (pipe(fds) != 0) return -2;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], STDERR_FILENO);
        fn();
        _exit(0);
    }
    close(fds[1]);
    size_t len = 0;
    ssize_t got;
    while (len + 1 < cap && (got = read(fds[0], err + len, cap - 1 - len)) > 0) len += (size_t)got;
    err[len] = '\0';
    close(fds[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// Each CUDA call runs in a fresh child: a child cannot use CUDA once its
// parent initialised it, so the parent itself never calls CUDA.
static void probe_count(void) {
    fprintf(stderr, "%d %d", cuda_device_count(), cuda_device_count());
}
static void select_device(void) { cuda_device_select(g_arg, 0); }
static void select_shared(void) { cuda_device_select(g_arg, 1); }
static void create_context(void) { cuda_context_create(0, 0); }

int main(void) {
    char err[4096];
    int count = -1, again = -1;
    int rc = run_captured(probe_count, err, sizeof err);
    CHECK(rc == 0, "cuda_device_count() crashed or failed: exit %d (%s)", rc, err);
    CHECK(sscanf(err, "%d %d", &count, &again) == 2, "no count printed: %s", err);
    CHECK(count >= 0, "cuda_device_count() = %d", count);
    CHECK(again == count, "second cuda_device_count() = %d, first %d", again, count);

    if (count == 0) {
        printf("no GPU visible: checking the CPU-only behaviour\n");
        g_arg = 0;
        rc = run_captured(select_device, err, sizeof err);
        CHECK(rc == 1, "cuda_device_select without GPU: exit %d, want 1", rc);
        CHECK(strstr(err, "run.device = cpu") != NULL, "no 'run.device = cpu' hint in: %s", err);
        // cudaStreamCreate fails first: the runtime's error plus the same hint
        rc = run_captured(create_context, err, sizeof err);
        CHECK(rc == 1, "cuda_context_create without GPU: exit %d, want 1", rc);
        CHECK(strstr(err, "HINT") && strstr(err, "run.device = cpu"), "no hint in: %s", err);
    } else {
        printf("%d GPU(s) visible: checking one rank per GPU\n", count);
        g_arg = count;  // one more local rank than GPUs
        rc = run_captured(select_device, err, sizeof err);
        CHECK(rc == 1, "local rank %d of %d GPUs without sharing: exit %d, want 1", count, count,
              rc);
        CHECK(strstr(err, "GPU(s)") && strstr(err, "HINT"), "not the GPU-count error: %s", err);
        rc = run_captured(select_shared, err, sizeof err);
        CHECK(rc == 0, "local rank %d of %d GPUs with sharing: exit %d, want 0 (%s)", count, count,
              rc, err);
    }
    return t_report("cuda_no_gpu_behaviour");
}
