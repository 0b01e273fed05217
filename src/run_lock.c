#include "run_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

char* run_lock_acquire(const char* run_dir) {
    dir_create(run_dir);
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/.lock", run_dir) >= sizeof path)
        return strf("run directory path too long: '%s'", run_dir);
    // no O_TRUNC: the holder's line must survive a refused open
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) return strf("cannot open the run lock '%s': %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        char holder[256] = "";
        ssize_t n = pread(fd, holder, sizeof holder - 1, 0);
        holder[n > 0 ? n : 0] = '\0';
        holder[strcspn(holder, "\n")] = '\0';
        close(fd);
        if (err == EWOULDBLOCK)
            return strf("run directory '%s' is in use by another zsseg train (%s): one run per "
                        "directory",
                        run_dir, *holder ? holder : "holder unknown");
        return strf("cannot lock '%s': %s", path, strerror(err));
    }
    char host[256] = "?", since[32] = "";
    gethostname(host, sizeof host - 1);
    time_t now = time(NULL);
    struct tm utc;
    strftime(since, sizeof since, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &utc));
    char line[512];
    int len = snprintf(line, sizeof line, "pid %ld on host %s since %s\n", (long)getpid(), host,
                       since);
    if (ftruncate(fd, 0) != 0 || pwrite(fd, line, (size_t)len, 0) != len)
        log_warn("cannot record the holder in %s: %s", path, strerror(errno));
    return NULL;  // fd deliberately kept open: the lock lives as long as the process
}
