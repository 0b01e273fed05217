// Collective watchdog: one deadline, set by the oldest outstanding collective.
#include "watchdog.h"

#include <stdio.h>
#include <string.h>

void watchdog_init(Watchdog* w, double timeout_s) {
    memset(w, 0, sizeof *w);
    w->timeout_s = timeout_s;
}

void watchdog_arm(Watchdog* w, const char* what, double now) {
    w->launched++;
    if (w->armed) return;  // the oldest one decides when we time out
    w->armed = 1;
    w->since = now;
    snprintf(w->what, sizeof w->what, "%s", what ? what : "");
}

void watchdog_disarm(Watchdog* w, double now) {
    (void)now;  // completion time: nothing waits on it (the next arm sets since)
    w->armed = 0;
    w->completed = w->launched;
}

WatchdogVerdict watchdog_check(const Watchdog* w, double now, int async_error) {
    if (async_error) return WATCHDOG_ERROR;
    if (w->armed && now - w->since > w->timeout_s) return WATCHDOG_TIMEOUT;
    return WATCHDOG_OK;
}

static const char* const HINT =
    "; this rank is usually the victim: check the other ranks' logs for the first error (a crash, "
    "out of memory, a node failure), which is the cause";

void watchdog_describe(const Watchdog* w, WatchdogVerdict v, int rank, double now, const char* err,
                       char* buf, size_t n) {
    if (!n) return;
    char coll[160];
    if (w->armed)
        snprintf(coll, sizeof coll, "NCCL collective '%s'", w->what);
    else
        snprintf(coll, sizeof coll, "NCCL communicator (no collective outstanding)");
    unsigned long long out = (unsigned long long)(w->launched - w->completed);
    switch (v) {
        case WATCHDOG_TIMEOUT:
            snprintf(buf, n,
                     "rank %d: %s timed out after %.1f s (limit dist.collective_timeout_s = %g; "
                     "%llu collectives outstanding)%s",
                     rank, coll, now - w->since, w->timeout_s, out, HINT);
            break;
        case WATCHDOG_ERROR:
            snprintf(buf, n, "rank %d: %s failed: %s%s", rank, coll, err ? err : "unknown error",
                     HINT);
            break;
        default:
            if (w->armed)
                snprintf(buf, n, "rank %d: %s outstanding for %.1f s (limit %g s)", rank, coll,
                         now - w->since, w->timeout_s);
            else
                snprintf(buf, n, "rank %d: no NCCL collective outstanding", rank);
    }
}
