// Collective watchdog: an NCCL collective that never completes (a rank died,
// a link hung) blocks its stream forever. The trainer arms the watchdog when
// it queues a collective and disarms it when all have completed; a monitor
// asks watchdog_check and aborts the job on a timeout or an asynchronous
// communicator error, so SLURM can requeue it instead of it hanging until the
// wall-clock limit. The clock is passed in (tests use a fake one); thread
// safety is the caller's business.
#ifndef ZSSEG_WATCHDOG_H
#define ZSSEG_WATCHDOG_H

#include <stddef.h>
#include <stdint.h>

typedef enum { WATCHDOG_OK = 0, WATCHDOG_TIMEOUT = 1, WATCHDOG_ERROR = 2 } WatchdogVerdict;

typedef struct {
    double timeout_s;
    int armed;
    double since;        // when the oldest outstanding collective was queued
    char what[128];      // which collective ("gradient bucket 3/7 (24.8 MiB)")
    uint64_t launched, completed;
} Watchdog;

void watchdog_init(Watchdog* w, double timeout_s);
// A collective was queued (keeps the OLDEST outstanding since/what).
void watchdog_arm(Watchdog* w, const char* what, double now);
// All outstanding collectives completed.
void watchdog_disarm(Watchdog* w, double now);
// async_error: nonzero when the communicator reports an asynchronous error.
// ERROR whenever async_error; TIMEOUT when armed for more than timeout_s.
WatchdogVerdict watchdog_check(const Watchdog* w, double now, int async_error);
// "rank 3: NCCL collective 'gradient bucket 3/7 (24.8 MiB)' timed out after 600.0 s
// (limit dist.collective_timeout_s = 600; 2 collectives outstanding)" or "... failed: <err>",
// then a hint to check the other ranks' logs; WATCHDOG_OK describes what is outstanding.
void watchdog_describe(const Watchdog* w, WatchdogVerdict v, int rank, double now, const char* err,
                       char* buf, size_t n);

#endif  // ZSSEG_WATCHDOG_H
