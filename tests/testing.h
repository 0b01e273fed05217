// Minimal test harness: numeric checks that count failures, random fills from
// the project's counter-based RNG, and a central finite-difference gradient
// check. Finite differences perturb the fp32 input and evaluate the loss in
// double, so the only fp32 error is the op's own rounding.
#ifndef ZSSEG_TESTING_H
#define ZSSEG_TESTING_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hd_math.h"

static int t_failures = 0;
static int t_checks = 0;

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        t_checks++;                                                          \
        if (!(cond)) {                                                       \
            t_failures++;                                                    \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);             \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
        }                                                                    \
    } while (0)

// |a - b| <= atol + rtol * |b|
static inline int t_close(double a, double b, double atol, double rtol) {
    return fabs(a - b) <= atol + rtol * fabs(b) && !isnan(a) && !isnan(b);
}
#define CHECK_CLOSE(a, b, atol, rtol, what)                                             \
    CHECK(t_close((a), (b), (atol), (rtol)), "%s: got %.9g want %.9g (atol %g rtol %g)", \
          (what), (double)(a), (double)(b), (double)(atol), (double)(rtol))

// Compare two arrays element-wise; reports the first few mismatches.
static inline void t_check_array(const char* what, const float* got, const float* want, size_t n,
                                 double atol, double rtol) {
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (!t_close(got[i], want[i], atol, rtol)) {
            if (bad < 5)
                fprintf(stderr, "FAIL %s[%zu]: got %.9g want %.9g\n", what, i, got[i], want[i]);
            bad++;
        }
    }
    t_checks++;
    if (bad) {
        t_failures++;
        fprintf(stderr, "FAIL %s: %d of %zu elements differ (atol %g rtol %g)\n", what, bad, n,
                atol, rtol);
    }
}

// Test allocation of n floats (uninitialised); exits on failure.
static inline float* t_falloc(size_t n) {
    float* p = (float*)malloc((n ? n : 1) * sizeof(float));
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

// The contract's dropout stream written out independently of rng_stream:
// purpose 4 (RNG_DROPOUT) << 56 | iteration << 32 | global sample.
static inline uint64_t t_drop_stream(long iter, int sample) {
    return (4ull << 56) | ((uint64_t)iter << 32) | (uint64_t)sample;
}

static inline void t_fill_uniform(float* x, size_t n, uint64_t seed, float lo, float hi) {
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * hd_rng_uniform(seed, 99, i);
}
static inline void t_fill_normal(float* x, size_t n, uint64_t seed, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = scale * hd_rng_normal(seed, 98, i);
}

// Loss as a function of the current input buffers (the callback re-runs the
// forward pass and returns sum(out * r) or the op's scalar loss, in double).
typedef double (*t_loss_fn)(void* ctx);

// Central differences on every element of x (or on `stride`-spaced elements
// when x is large) against the analytic gradient g. Returns failures added.
static inline int t_gradcheck(const char* what, float* x, const float* g, size_t n, size_t stride,
                              t_loss_fn f, void* ctx, double eps, double atol, double rtol) {
    int bad = 0;
    if (stride == 0) stride = 1;
    for (size_t i = 0; i < n; i += stride) {
        float keep = x[i];
        x[i] = (float)(keep + eps);
        double lp = f(ctx);
        x[i] = (float)(keep - eps);
        double lm = f(ctx);
        x[i] = keep;
        // use the actually represented step, not eps, for the quotient
        double h = (double)(float)(keep + eps) - (double)(float)(keep - eps);
        double num = (lp - lm) / h;
        if (!t_close(g[i], num, atol, rtol)) {
            if (bad < 5)
                fprintf(stderr, "FAIL grad %s[%zu]: analytic %.9g numeric %.9g\n", what, i, g[i], num);
            bad++;
        }
    }
    t_checks++;
    if (bad) {
        t_failures++;
        fprintf(stderr, "FAIL grad %s: %d elements differ (atol %g rtol %g)\n", what, bad, atol, rtol);
    }
    return bad;
}

// Dot product in double: the usual projection loss sum(out * r).
static inline double t_dot(const float* a, const float* b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * (double)b[i];
    return s;
}

// Run fn in a child process; true if it stopped with an error (ZS_FAIL exits 1).
// Run fn in a forked child with file descriptor fd (1 or 2) captured into buf
// (NUL-terminated); returns the child's exit status (-1 if it did not exit).
// Lets a test assert the exact message and exit code of a failing call.
static inline int t_run_child(void (*fn)(void), int fd, char* buf, size_t cap) {
    int p[2];
    if (pipe(p) != 0) return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        dup2(p[1], fd);
        fn();
        fflush(NULL);
        _exit(0);
    }
    close(p[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(p[0], buf + n, cap - 1 - n)) > 0) n += (size_t)r;
    buf[n] = '\0';
    close(p[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// fn stops the process with ZS_FAIL's exit code 1 (its message is discarded).
static inline int t_exits_with_error(void (*fn)(void)) {
    char buf[8192];
    return t_run_child(fn, 2, buf, sizeof buf) == 1;
}

static inline int t_report(const char* name) {
    if (t_failures) {
        fprintf(stderr, "%s: %d of %d checks FAILED\n", name, t_failures, t_checks);
        return 1;
    }
    printf("%s: all %d checks passed\n", name, t_checks);
    return 0;
}

#endif  // ZSSEG_TESTING_H
