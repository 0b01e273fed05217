#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <libgen.h>
#include <mpi.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int zs_rank = 0;
int zs_world = 1;

static pthread_t zs_main_thread;
static int zs_main_thread_set;

void zs_set_rank(int rank, int world) {
    zs_rank = rank;
    zs_world = world;
    zs_main_thread = pthread_self();
    zs_main_thread_set = 1;
}

// Stops the process after an error. _exit, not exit: exit runs HDF5's atexit
// cleanup, which closes the files still open, and flushing a half-written
// file on a full disk crashed there (SIGSEGV after the message). Nothing a
// failed run leaves open is worth finishing: files are written as .tmp and
// renamed into place only once complete. Only stdout and stderr are flushed:
// a log's stream whose write just failed would retry it (a part of a line).
__attribute__((noreturn)) static void zs_exit(void) {
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    fflush(stdout);
    fflush(stderr);
    if (init && !fin && zs_world > 1) MPI_Abort(MPI_COMM_WORLD, 1);
    _exit(1);
}

static const char* zs_disk_full_text(int err) {
    switch (err) {
        case ENOSPC: return "no space left on device";
#ifdef EDQUOT
        case EDQUOT: return "no space left on device (disk quota exceeded)";
#endif
        case EFBIG: return "no space left on device (file too large: the file size limit, ulimit -f, is reached)";
        default: return NULL;
    }
}

// A failed write recorded on HDF5's error stack: the sec2 driver's message
// carries "filename = '...'" and "errno = N".
typedef struct {
    int err;
    char file[1024];
} H5WriteErr;

static herr_t h5_write_err_cb(unsigned n, const H5E_error2_t* e, void* data) {
    (void)n;
    H5WriteErr* w = (H5WriteErr*)data;
    const char* p = e->desc ? strstr(e->desc, "errno = ") : NULL;
    if (!p || w->err) return 0;
    w->err = atoi(p + 8);
    const char* f = strstr(e->desc, "filename = '");
    if (f) {
        f += 12;
        const char* q = strchr(f, '\'');
        size_t len = q ? (size_t)(q - f) : strlen(f);
        if (len >= sizeof w->file) len = sizeof w->file - 1;
        memcpy(w->file, f, len);
        w->file[len] = '\0';
    }
    return 0;
}

static const char* disk_hint =
    "free disk space or raise the quota / file size limit; the checkpoints written before "
    "are intact: rerun with --resume auto";

// The first '...' quoted in s (the file a message names), into out.
static void first_quoted(const char* s, char* out, size_t n) {
    const char* a = s ? strchr(s, '\'') : NULL;
    const char* b = a ? strchr(a + 1, '\'') : NULL;
    out[0] = '\0';
    if (!b) return;
    size_t len = (size_t)(b - a - 1);
    if (len >= n) len = n - 1;
    memcpy(out, a + 1, len);
    out[len] = '\0';
}

void zs_fail(const char* file, int line, const char* what, const char* detail, const char* hint) {
    int err = errno;  // a failed write's reason (the callers pass strerror along)
    // the last HDF5 call's error stack (cleared by every HDF5 API call): a
    // write that failed for want of space names the file
    // (main thread only: the HDF5 library is not built thread-safe)
    H5WriteErr w = {0, ""};
    if (!zs_main_thread_set || pthread_equal(pthread_self(), zs_main_thread))
        H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, h5_write_err_cb, &w);
    const char* full = zs_disk_full_text(w.err);
    // a write failure reported with the disk-space hint (metrics log, event
    // file, fsync, ...): errno says whether space ran out, the message names the file
    if (!full && hint && strstr(hint, "disk space") && strstr(what, "writing '") == NULL &&
        (full = zs_disk_full_text(err)) != NULL)
        first_quoted(what, w.file, sizeof w.file);
    if (full) {
        fprintf(stderr, "[rank %d] error at %s:%d: %s writing '%s': %s%s%s\n", zs_rank, file, line,
                full, w.file[0] ? w.file : "(unknown file)", what, detail ? ": " : "",
                detail ? detail : "");
        hint = disk_hint;
    } else {
        fprintf(stderr, "[rank %d] error at %s:%d: %s%s%s\n", zs_rank, file, line, what,
                detail ? ": " : "", detail ? detail : "");
    }
    if (hint && *hint) fprintf(stderr, "[rank %d] HINT: %s\n", zs_rank, hint);
    zs_exit();
}

void zs_failf(const char* file, int line, const char* hint, const char* fmt, ...) {
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    zs_fail(file, line, msg, NULL, hint);
}

static void log_v(FILE* fp, const char* tag, const char* fmt, va_list ap) {
    if (tag) fprintf(fp, "[rank %d] %s: ", zs_rank, tag);
    vfprintf(fp, fmt, ap);
    fputc('\n', fp);
    fflush(fp);
}

void log_info(const char* fmt, ...) {
    if (zs_rank != 0) return;
    va_list ap;
    va_start(ap, fmt);
    log_v(stdout, NULL, fmt, ap);
    va_end(ap);
}

void log_warn(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_v(stderr, "warning", fmt, ap);
    va_end(ap);
}

void log_error(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_v(stderr, "error", fmt, ap);
    va_end(ap);
}

void mpi_check(int err, const char* call, const char* file, int line) {
    if (err == MPI_SUCCESS) return;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(err, msg, &len);
    zs_fail(file, line, call, msg,
            "an MPI call failed: check that all ranks run the same command and config, and that "
            "mpirun's host list and network settings are right");
}

// Innermost HDF5 error description, for a one-line message.
static herr_t h5_walk_cb(unsigned n, const H5E_error2_t* err, void* data) {
    if (n == 0) snprintf((char*)data, 512, "%s (in %s)", err->desc, err->func_name);
    return 0;
}

void h5_check(long long ret, const char* call, const char* file, int line) {
    if (ret >= 0) return;
    char msg[512] = "unknown HDF5 error";
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, h5_walk_cb, msg);
    zs_fail(file, line, call, msg,
            "an HDF5 call failed: check the file exists, is a complete HDF5 file (not truncated), "
            "and that the directory is writable; `h5dump -H FILE` shows its layout");
}

void* malloc_check(size_t size, const char* file, int line) {
    void* p = malloc(size ? size : 1);
    if (!p) {
        char d[64];
        snprintf(d, sizeof d, "%zu bytes", size);
        zs_fail(file, line, "out of memory", d, "reduce the batch size or crop size in the config");
    }
    return p;
}

void* calloc_check(size_t n, size_t size, const char* file, int line) {
    void* p = calloc(n ? n : 1, size ? size : 1);
    if (!p) {
        char d[64];
        snprintf(d, sizeof d, "%zu x %zu bytes", n, size);
        zs_fail(file, line, "out of memory", d, "reduce the batch size or crop size in the config");
    }
    return p;
}

char* strf(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char* s = (char*)mallocCheck((size_t)(n < 0 ? 0 : n) + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

FILE* fopen_check(const char* path, const char* mode, const char* file, int line) {
    if (mode[0] == 'r') file_check_regular(path, file, line);
    FILE* fp = fopen(path, mode);
    if (!fp)
        zs_failf(file, line,
                 mode[0] == 'r' ? "check the path in the config or on the command line"
                                : "check that the directory exists and is writable",
                 "cannot open file '%s' (mode %s): %s", path, mode, strerror(errno));
    return fp;
}

void fread_check(void* ptr, size_t size, size_t n, FILE* fp, const char* path, const char* file,
                 int line) {
    size_t got = fread(ptr, size, n, fp);
    if (got != n)
        zs_failf(file, line, "the file is truncated or corrupt: regenerate or re-copy it",
                 "short read from '%s': wanted %zu items, got %zu (%s)", path, n, got,
                 feof(fp) ? "unexpected end of file" : strerror(errno));
}

void fwrite_check(const void* ptr, size_t size, size_t n, FILE* fp, const char* path,
                  const char* file, int line) {
    if (fwrite(ptr, size, n, fp) != n) {
        int err = errno;
        const char* full = zs_disk_full_text(err);
        if (full) zs_failf(file, line, disk_hint, "%s writing '%s': %s", full, path, strerror(err));
        zs_failf(file, line, "check free disk space and quota", "write to '%s' failed: %s", path,
                 strerror(err));
    }
}

void fclose_check(FILE* fp, const char* path, const char* file, int line) {
    if (fclose(fp) != 0) {
        int err = errno;
        const char* full = zs_disk_full_text(err);
        if (full)
            zs_failf(file, line, disk_hint, "%s writing '%s' (closing it): %s", full, path,
                     strerror(err));
        zs_failf(file, line, "check free disk space and quota", "closing '%s' failed: %s", path,
                 strerror(err));
    }
}

char* file_read_all(const char* path, size_t* len) {
    FILE* fp = fopenCheck(path, "rb");
    if (fseek(fp, 0, SEEK_END) != 0) ZS_FAIL("is it a regular file?", "cannot seek '%s'", path);
    long n = ftell(fp);
    if (n < 0) ZS_FAIL("is it a regular file?", "cannot size '%s'", path);
    rewind(fp);
    char* buf = (char*)mallocCheck((size_t)n + 1);
    freadCheck(buf, 1, (size_t)n, fp, path);
    buf[n] = '\0';
    fcloseCheck(fp, path);
    if (len) *len = (size_t)n;
    return buf;
}

static void fsync_dir_of(const char* path) {
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);  // best effort: some file systems refuse fsync on directories
        close(fd);
    }
}

void file_write_atomic(const char* path, const void* data, size_t len) {
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        ZS_FAIL("use a shorter run directory", "path too long: '%s'", path);
    FILE* fp = fopenCheck(tmp, "wb");
    fwriteCheck(data, 1, len, fp, tmp);
    fcloseCheck(fp, tmp);  // reports a failed flush of buffered data
    file_commit(tmp, path);
}

void file_commit(const char* tmp, const char* path) {
    int fd = open(tmp, O_RDONLY);
    if (fd < 0 || fsync(fd) != 0)
        ZS_FAIL("check free disk space and quota", "cannot flush '%s': %s", tmp, strerror(errno));
    close(fd);
    if (rename(tmp, path) != 0)
        ZS_FAIL("check directory permissions", "cannot rename '%s' to '%s': %s", tmp, path,
                strerror(errno));
    fsync_dir_of(path);
}

void dir_create(const char* path) {
    char buf[4096];
    if (strlen(path) >= sizeof buf)
        ZS_FAIL("use a shorter path", "path too long: '%s'", path);
    strcpy(buf, path);
    for (char* c = buf + 1;; c++) {
        if (*c != '/' && *c != '\0') continue;
        char keep = *c;
        *c = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            ZS_FAIL("check the permissions of the parent directory",
                    "cannot create directory '%s': %s", buf, strerror(errno));
        *c = keep;
        if (!keep) break;
    }
}

// ---------------------------------------------------------------- checksums
static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_table_init(void) {
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t c = b;
        for (int i = 0; i < 8; i++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
        crc_table[b] = c;
    }
}

uint32_t crc32c_extend(uint32_t crc, const void* data, size_t n) {
    pthread_once(&crc_once, crc_table_init);
    const uint8_t* p = (const uint8_t*)data;
    uint32_t c = ~crc;
    for (size_t i = 0; i < n; i++) c = crc_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return ~c;
}

uint32_t crc32c(const void* data, size_t n) { return crc32c_extend(0, data, n); }

void double_text_shortest(char* out, size_t cap, double v) {
    for (int p = 1; p <= 17; p++) {
        snprintf(out, cap, "%.*g", p, v);
        if (strtod(out, NULL) == v) return;
    }
}

// ---------------------------------------------------------------- input and log files
// A FIFO or device blocks a reader forever and a directory sizes as 2^63
// bytes, so readers ask first and the user hears which path is wrong.
static const char* file_kind(mode_t m) {
    if (S_ISDIR(m)) return "a directory";
    if (S_ISFIFO(m)) return "a FIFO";
    if (S_ISCHR(m) || S_ISBLK(m)) return "a device";
    if (S_ISSOCK(m)) return "a socket";
    return "a special file";
}

static char* file_regular_problem(const char* path) {
    struct stat st;
    // a missing file: the caller's open says so
    if (stat(path, &st) != 0 || S_ISREG(st.st_mode)) return NULL;
    return strf("'%s' is %s, not a regular file", path, file_kind(st.st_mode));
}

char* file_readable_problem(const char* path, const char* what) {
    if (access(path, R_OK) != 0)
        return strf("cannot read %s '%s': %s", what, path, strerror(errno));
    return file_regular_problem(path);
}

void file_check_regular(const char* path, const char* file, int line) {
    char* why = file_regular_problem(path);
    if (why) zs_failf(file, line, FILE_REGULAR_HINT, "%s", why);
}

FILE* file_open_append_nofollow(const char* path) {
    // O_NONBLOCK: a FIFO planted at PATH fails (ENXIO) or is caught below instead of blocking
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
    if (fd < 0 && errno == ELOOP)
        ZS_FAIL("remove the link (the run directory's logs must be its own files) or choose "
                "another run.out_dir",
                "'%s' is a symbolic link: logs are not appended through links", path);
    if (fd < 0 && errno == ENXIO)
        ZS_FAIL(FILE_REGULAR_HINT, "'%s' is a FIFO, not a regular file", path);
    if (fd < 0)
        ZS_FAIL("check that the directory exists and is writable",
                "cannot open file '%s' for appending: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        ZS_FAIL(FILE_REGULAR_HINT, "'%s' is %s, not a regular file", path, file_kind(st.st_mode));
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    FILE* fp = fdopen(fd, "ab");
    if (!fp) ZS_FAIL("free some memory", "fdopen '%s': %s", path, strerror(errno));
    return fp;
}
