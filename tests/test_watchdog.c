// Collective watchdog on a fake clock: the limit, disarm, the oldest
// outstanding collective, error verdicts, and the messages.
#include <string.h>

#include "testing.h"
#include "watchdog.h"

static void test_verdicts(void) {
    Watchdog w;
    watchdog_init(&w, 600.0);
    CHECK(!w.armed && w.launched == 0 && w.completed == 0 && w.timeout_s == 600.0, "init");
    CHECK(watchdog_check(&w, 1e9, 0) == WATCHDOG_OK, "disarmed never times out");

    double t0 = 1000.0;
    watchdog_arm(&w, "gradient bucket 1/7 (1.0 MiB)", t0);
    CHECK(watchdog_check(&w, t0, 0) == WATCHDOG_OK, "just queued");
    CHECK(watchdog_check(&w, t0 + 599.9, 0) == WATCHDOG_OK, "before the limit");
    CHECK(watchdog_check(&w, t0 + 600.0, 0) == WATCHDOG_OK, "at the limit");
    CHECK(watchdog_check(&w, t0 + 600.001, 0) == WATCHDOG_TIMEOUT, "right after the limit");

    // later collectives do not move the deadline of the oldest
    watchdog_arm(&w, "gradient bucket 2/7 (24.8 MiB)", t0 + 500.0);
    watchdog_arm(&w, "gradient bucket 3/7 (24.8 MiB)", t0 + 550.0);
    CHECK(w.launched == 3 && w.completed == 0, "launched %llu completed %llu",
          (unsigned long long)w.launched, (unsigned long long)w.completed);
    CHECK(w.since == t0 && strcmp(w.what, "gradient bucket 1/7 (1.0 MiB)") == 0,
          "oldest kept: since %g what '%s'", w.since, w.what);
    CHECK(watchdog_check(&w, t0 + 601.0, 0) == WATCHDOG_TIMEOUT, "oldest decides the timeout");

    // all completed: reset; the next collective starts a fresh deadline
    watchdog_disarm(&w, t0 + 590.0);
    CHECK(!w.armed && w.completed == 3, "disarm: armed %d completed %llu", w.armed,
          (unsigned long long)w.completed);
    CHECK(watchdog_check(&w, t0 + 5000.0, 0) == WATCHDOG_OK, "disarmed after completion");
    watchdog_arm(&w, "parameter checksum", t0 + 2000.0);
    CHECK(w.since == t0 + 2000.0 && strcmp(w.what, "parameter checksum") == 0,
          "re-armed: since %g what '%s'", w.since, w.what);
    CHECK(watchdog_check(&w, t0 + 2600.0, 0) == WATCHDOG_OK &&
              watchdog_check(&w, t0 + 2600.5, 0) == WATCHDOG_TIMEOUT,
          "fresh deadline from the re-arm");

    // an asynchronous error is fatal at any time, armed or not
    CHECK(watchdog_check(&w, t0 + 2000.0, 1) == WATCHDOG_ERROR, "error while armed, in time");
    watchdog_disarm(&w, t0 + 2001.0);
    CHECK(watchdog_check(&w, t0 + 2001.0, 7) == WATCHDOG_ERROR, "error while disarmed");

    // a name longer than the field is truncated, not overflowed
    char longname[300];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    watchdog_arm(&w, longname, 0.0);
    CHECK(strlen(w.what) == sizeof w.what - 1, "long name truncated to %zu", strlen(w.what));

    // short limits (tests, config minimum)
    watchdog_init(&w, 0.5);
    watchdog_arm(&w, "allreduce", 10.0);
    CHECK(watchdog_check(&w, 10.5, 0) == WATCHDOG_OK &&
              watchdog_check(&w, 10.51, 0) == WATCHDOG_TIMEOUT,
          "0.5 s limit");
}

static void test_messages(void) {
    Watchdog w;
    watchdog_init(&w, 600.0);
    watchdog_arm(&w, "gradient bucket 3/7 (24.8 MiB)", 100.0);
    watchdog_arm(&w, "gradient bucket 4/7 (24.8 MiB)", 101.0);
    char buf[1024];
    watchdog_describe(&w, WATCHDOG_TIMEOUT, 3, 700.04, NULL, buf, sizeof buf);
    printf("timeout: %s\n", buf);
    CHECK(strstr(buf,
                 "rank 3: NCCL collective 'gradient bucket 3/7 (24.8 MiB)' timed out after "
                 "600.0 s (limit dist.collective_timeout_s = 600") == buf,
          "timeout message: %s", buf);
    CHECK(strstr(buf, "2 collectives outstanding") && strstr(buf, "other ranks' logs"),
          "timeout message: outstanding count and hint: %s", buf);

    watchdog_describe(&w, WATCHDOG_ERROR, 0, 150.0,
                      "unhandled system error (remote process exited)", buf, sizeof buf);
    printf("error: %s\n", buf);
    CHECK(strstr(buf,
                 "rank 0: NCCL collective 'gradient bucket 3/7 (24.8 MiB)' failed: unhandled "
                 "system error (remote process exited)") == buf &&
              strstr(buf, "other ranks' logs"),
          "error message: %s", buf);

    watchdog_disarm(&w, 160.0);
    watchdog_describe(&w, WATCHDOG_ERROR, 5, 170.0, "remote error", buf, sizeof buf);
    CHECK(
        strstr(buf, "rank 5: NCCL communicator (no collective outstanding) failed: remote error") ==
            buf,
        "error while disarmed: %s", buf);
    watchdog_describe(&w, WATCHDOG_OK, 5, 170.0, NULL, buf, sizeof buf);
    CHECK(strcmp(buf, "rank 5: no NCCL collective outstanding") == 0, "ok message: %s", buf);

    char small[24];
    watchdog_describe(&w, WATCHDOG_ERROR, 5, 170.0, "remote error", small, sizeof small);
    CHECK(strlen(small) == sizeof small - 1, "truncated into a small buffer: '%s'", small);
}

int main(void) {
    test_verdicts();
    test_messages();
    return t_report("test_watchdog");
}
