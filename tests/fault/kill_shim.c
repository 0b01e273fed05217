// kill_shim: an LD_PRELOAD library that kills its process at one chosen
// file-system commit call, to test that a run killed at any such point
// resumes exactly (issue 13, tests/train_killpoints.sh).
//
// Wrapped: rename, renameat (op "rename"), fsync, fdatasync (op "fsync"),
// unlink, unlinkat (op "unlink"); the real calls come from dlsym(RTLD_NEXT).
// Environment (read once, at the first wrapped call):
//   ZSSEG_KILL_AT=N      raise SIGKILL at the Nth counted call (1-based);
//                        unset or 0: count only
//   ZSSEG_KILL_OP=OP     count only calls of OP (rename|fsync|unlink)
//   ZSSEG_KILL_WHEN=W    before (default): die instead of making the call;
//                        after: make the call, then die
//   ZSSEG_KILL_RANK=R    active only in the process whose OMPI_COMM_WORLD_RANK
//                        (or PMIX_RANK) is R; elsewhere (mpirun itself, the
//                        other ranks) every call passes through uncounted
//   ZSSEG_KILL_PATH=DIR  count only calls on paths under DIR (an absolute,
//                        symlink-free path; fsync's file is found through
//                        /proc/self/fd), so MPI's and the system's own files
//                        do not shift the numbering
//   ZSSEG_KILL_COUNT=F   append the number of counted calls to F at exit
//   ZSSEG_KILL_TRACE=F   append "N op when path" for every counted call to F
//                        (written before the call, so the killing one is there)
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { OP_RENAME = 1, OP_FSYNC = 2, OP_UNLINK = 4, OP_ALL = 7 };

static int g_state;  // 0: not read yet, 1: active, -1: pass through
static int g_ops = OP_ALL, g_after;
static long g_at;
static long g_count;
static char g_prefix[4096];
static size_t g_prefix_len;
static const char* g_count_file;
static const char* g_trace_file;

static void append_line(const char* file, const char* line) {
    // plain open/write: no stdio buffers in a process about to die
    int fd = open(file, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0) return;
    size_t len = strlen(line), off = 0;
    while (off < len) {
        ssize_t w = write(fd, line + off, len - off);
        if (w <= 0) break;
        off += (size_t)w;
    }
    close(fd);
}

static void at_exit_count(void) {
    if (g_state != 1 || !g_count_file) return;
    char line[64];
    snprintf(line, sizeof line, "%ld\n", g_count);
    append_line(g_count_file, line);
}

static void init_state(void) {
    if (g_state) return;
    g_state = -1;
    const char* want = getenv("ZSSEG_KILL_RANK");
    if (want && *want) {
        const char* rank = getenv("OMPI_COMM_WORLD_RANK");
        if (!rank) rank = getenv("PMIX_RANK");
        if (!rank || strcmp(rank, want) != 0) return;
    }
    const char* v = getenv("ZSSEG_KILL_AT");
    g_at = v ? atol(v) : 0;
    v = getenv("ZSSEG_KILL_OP");
    if (v && *v) {
        if (!strcmp(v, "rename")) g_ops = OP_RENAME;
        else if (!strcmp(v, "fsync")) g_ops = OP_FSYNC;
        else if (!strcmp(v, "unlink")) g_ops = OP_UNLINK;
        else {
            fprintf(stderr, "kill_shim: ZSSEG_KILL_OP=%s is not rename, fsync or unlink\n", v);
            _exit(2);
        }
    }
    v = getenv("ZSSEG_KILL_WHEN");
    if (v && *v) {
        if (!strcmp(v, "after")) g_after = 1;
        else if (strcmp(v, "before") != 0) {
            fprintf(stderr, "kill_shim: ZSSEG_KILL_WHEN=%s is not before or after\n", v);
            _exit(2);
        }
    }
    v = getenv("ZSSEG_KILL_PATH");
    if (v && *v) {
        snprintf(g_prefix, sizeof g_prefix, "%s", v);
        g_prefix_len = strlen(g_prefix);
        while (g_prefix_len > 1 && g_prefix[g_prefix_len - 1] == '/') g_prefix[--g_prefix_len] = 0;
    }
    g_count_file = getenv("ZSSEG_KILL_COUNT");
    g_trace_file = getenv("ZSSEG_KILL_TRACE");
    if (g_count_file && !*g_count_file) g_count_file = NULL;
    if (g_trace_file && !*g_trace_file) g_trace_file = NULL;
    g_state = 1;
    atexit(at_exit_count);
}

static void* real(const char* name) {
    void* f = dlsym(RTLD_NEXT, name);
    if (!f) {
        fprintf(stderr, "kill_shim: no next definition of %s\n", name);
        abort();
    }
    return f;
}

// The absolute path of `path` relative to dirfd (AT_FDCWD: the working
// directory), or of the open file fd when path is NULL; "" when unknown.
static void resolve(int dirfd, const char* path, char* out, size_t cap) {
    char link[64], base[4096];
    out[0] = 0;
    if (path && path[0] == '/') {
        snprintf(out, cap, "%s", path);
        return;
    }
    ssize_t n = -1;
    if (!path || dirfd != AT_FDCWD) {
        snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
        n = readlink(link, base, sizeof base - 1);
        if (n >= 0) base[n] = 0;
    } else if (getcwd(base, sizeof base)) {
        n = (ssize_t)strlen(base);
    }
    if (n < 0) return;
    int k = path ? snprintf(out, cap, "%s/%s", base, path) : snprintf(out, cap, "%s", base);
    if (k < 0 || (size_t)k >= cap) out[0] = 0;  // too long to match a prefix reliably
}

static int under_prefix(const char* p) {
    if (!g_prefix_len) return 1;
    return strncmp(p, g_prefix, g_prefix_len) == 0 &&
           (p[g_prefix_len] == 0 || p[g_prefix_len] == '/' || g_prefix[g_prefix_len - 1] == '/');
}

// Before the call: 1 when it is counted; dies here for a "before" kill.
static int before_call(int op, const char* name, const char* p1, const char* p2) {
    init_state();
    if (g_state != 1 || !(g_ops & op)) return 0;
    if (!under_prefix(p1) && !(p2 && under_prefix(p2))) return 0;
    long n = __atomic_add_fetch(&g_count, 1, __ATOMIC_SEQ_CST);
    int hit = g_at > 0 && n == g_at;
    if (g_trace_file) {
        char line[9000];
        int k = snprintf(line, sizeof line, "%ld %s %s %s%s%s%s\n", n, name,
                         g_after ? "after" : "before", p1, p2 ? " " : "", p2 ? p2 : "",
                         hit ? " KILL" : "");
        if (k > 0) append_line(g_trace_file, line);
    }
    if (hit && !g_after) raise(SIGKILL);
    return hit;
}

static void after_call(int hit) {
    if (hit) raise(SIGKILL);
}

int rename(const char* old, const char* new) {
    static int (*next)(const char*, const char*);
    if (!next) next = (int (*)(const char*, const char*))real("rename");
    char a[4096], b[4096];
    resolve(AT_FDCWD, old, a, sizeof a);
    resolve(AT_FDCWD, new, b, sizeof b);
    int hit = before_call(OP_RENAME, "rename", a, b);
    int rc = next(old, new);
    int e = errno;
    after_call(hit);
    errno = e;
    return rc;
}

int renameat(int olddirfd, const char* old, int newdirfd, const char* new) {
    static int (*next)(int, const char*, int, const char*);
    if (!next) next = (int (*)(int, const char*, int, const char*))real("renameat");
    char a[4096], b[4096];
    resolve(olddirfd, old, a, sizeof a);
    resolve(newdirfd, new, b, sizeof b);
    int hit = before_call(OP_RENAME, "renameat", a, b);
    int rc = next(olddirfd, old, newdirfd, new);
    int e = errno;
    after_call(hit);
    errno = e;
    return rc;
}

int fsync(int fd) {
    static int (*next)(int);
    if (!next) next = (int (*)(int))real("fsync");
    char a[4096];
    resolve(fd, NULL, a, sizeof a);
    int hit = before_call(OP_FSYNC, "fsync", a, NULL);
    int rc = next(fd);
    int e = errno;
    after_call(hit);
    errno = e;
    return rc;
}

int fdatasync(int fd) {
    static int (*next)(int);
    if (!next) next = (int (*)(int))real("fdatasync");
    char a[4096];
    resolve(fd, NULL, a, sizeof a);
    int hit = before_call(OP_FSYNC, "fdatasync", a, NULL);
    int rc = next(fd);
    int e = errno;
    after_call(hit);
    errno = e;
    return rc;
}

int unlink(const char* path) {
    static int (*next)(const char*);
    if (!next) next = (int (*)(const char*))real("unlink");
    char a[4096];
    resolve(AT_FDCWD, path, a, sizeof a);
    int hit = before_call(OP_UNLINK, "unlink", a, NULL);
    int rc = next(path);
    int e = errno;
    after_call(hit);
    errno = e;
    return rc;
}

int unlinkat(int dirfd, const char* path, int flags) {
    static int (*next)(int, const char*, int);
    if (!next) next = (int (*)(int, const char*, int))real("unlinkat");
    char a[4096];
    resolve(dirfd, path, a, sizeof a);
    int hit = before_call(OP_UNLINK, "unlinkat", a, NULL);
    int rc = next(dirfd, path, flags);
    int e = errno;
    after_call(hit);
    errno = e;
    return rc;
}
