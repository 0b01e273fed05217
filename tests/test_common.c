// Check macros, logging and atomic files: each failure path runs in a forked
// child whose stderr/stdout is captured, so the test asserts the exact message
// a user would see and the non-zero exit.
#include <hdf5.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "metrics_log.h"
#include "testing.h"

static void child_fopen_missing(void) { fopenCheck("/nonexistent/dir/weights.h5", "rb"); }
static void child_fread_short(void) {
    const char* path = "/tmp/zsseg_test_short.bin";
    file_write_atomic(path, "abc", 3);
    FILE* fp = fopenCheck(path, "rb");
    char buf[8];
    freadCheck(buf, 1, 8, fp, path);
}
static void child_h5_bad_file(void) {
    const char* path = "/tmp/zsseg_test_not_hdf5.h5";
    file_write_atomic(path, "not an hdf5 file", 16);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    h5Check(H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT));
}
static void child_mpi_bad_rank(void) {
    MPI_Init(NULL, NULL);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    int x = 0;
    mpiCheck(MPI_Send(&x, 1, MPI_INT, 99, 0, MPI_COMM_WORLD));  // no rank 99 in a 1-rank world
}
static void child_log_rank1(void) {
    zs_set_rank(1, 2);
    log_info("rank-0-only message");
    log_warn("warn %d", 7);
}
static void child_log_rank0(void) { log_info("hello %d", 42); }

// Inputs that are not regular files, and logs reached through a link.
static char irr_dir[] = "/tmp/zsseg-test-common-XXXXXX";
static char irr_path[1024];
static void child_fopen_fifo(void) { fopenCheck(irr_path, "rb"); }
static void child_read_dir(void) { file_read_all(irr_dir, NULL); }
static void child_append(void) { file_open_append_nofollow(irr_path); }
static void child_metrics_log(void) { metrics_log_open(irr_path); }

static void test_irregular_files(void) {
    char out[8192], want[1200];
    CHECK(mkdtemp(irr_dir) != NULL, "mkdtemp");
    snprintf(irr_path, sizeof irr_path, "%s/fifo", irr_dir);
    CHECK(mkfifo(irr_path, 0644) == 0, "mkfifo");
    int rc = t_run_child(child_fopen_fifo, 2, out, sizeof out);  // blocked forever before
    snprintf(want, sizeof want, "'%s' is a FIFO, not a regular file", irr_path);
    CHECK(rc == 1 && strstr(out, want) && strstr(out, "HINT:"), "FIFO read: %d %s", rc, out);
    rc = t_run_child(child_append, 2, out, sizeof out);  // a FIFO as a log does not block either
    CHECK(rc == 1 && strstr(out, want), "FIFO log: %d %s", rc, out);
    rc = t_run_child(child_read_dir, 2, out, sizeof out);
    snprintf(want, sizeof want, "'%s' is a directory, not a regular file", irr_dir);
    CHECK(rc == 1 && strstr(out, want), "directory read: %d %s", rc, out);
    char* why = file_readable_problem(irr_dir, "image");
    CHECK(why && strstr(why, want), "file_readable_problem: %s", why ? why : "(null)");
    free(why);
    why = file_readable_problem("/nonexistent/x.png", "image");
    CHECK(why && strstr(why, "cannot read image '/nonexistent/x.png'"), "missing: %s", why);
    free(why);

    // a log symlinked out of the run directory is refused, the target untouched
    char target[1100];
    snprintf(target, sizeof target, "%s/elsewhere", irr_dir);
    snprintf(irr_path, sizeof irr_path, "%s/metrics.jsonl", irr_dir);
    CHECK(symlink(target, irr_path) == 0, "symlink");
    snprintf(want, sizeof want, "'%s' is a symbolic link", irr_path);
    rc = t_run_child(child_append, 2, out, sizeof out);
    CHECK(rc == 1 && strstr(out, want) && strstr(out, "HINT:"), "symlink log: %d %s", rc, out);
    rc = t_run_child(child_metrics_log, 2, out, sizeof out);
    CHECK(rc == 1 && strstr(out, want), "metrics_log_open through a symlink: %d %s", rc, out);
    CHECK(access(target, F_OK) != 0, "the link's target was created");
    // a plain file is created, then appended to
    unlink(irr_path);
    for (int k = 0; k < 2; k++) {
        FILE* fp = file_open_append_nofollow(irr_path);
        fputs(k ? "b\n" : "a\n", fp);
        fclose(fp);
    }
    char* got = file_read_all(irr_path, NULL);
    CHECK(strcmp(got, "a\nb\n") == 0, "appended: '%s'", got);
    free(got);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", irr_dir);
    CHECK(system(cmd) == 0, "rm %s", irr_dir);
}

int main(void) {
    char out[8192];
    int rc;

    rc = t_run_child(child_fopen_missing, 2, out, sizeof out);
    CHECK(rc == 1, "fopenCheck exit code %d", rc);
    CHECK(strstr(out, "/nonexistent/dir/weights.h5") != NULL, "fopenCheck names the path: %s", out);
    CHECK(strstr(out, "test_common.c:") != NULL, "fopenCheck names file:line: %s", out);
    CHECK(strstr(out, "HINT:") != NULL, "fopenCheck gives a hint: %s", out);

    rc = t_run_child(child_fread_short, 2, out, sizeof out);
    CHECK(rc == 1, "freadCheck exit code %d", rc);
    CHECK(strstr(out, "wanted 8 items, got 3") != NULL, "freadCheck counts: %s", out);
    CHECK(strstr(out, "truncated") != NULL, "freadCheck hint: %s", out);

    rc = t_run_child(child_h5_bad_file, 2, out, sizeof out);
    CHECK(rc == 1, "h5Check exit code %d", rc);
    CHECK(strstr(out, "H5Fopen") != NULL, "h5Check names the call: %s", out);
    CHECK(strstr(out, "HINT:") != NULL, "h5Check hint: %s", out);

    rc = t_run_child(child_mpi_bad_rank, 2, out, sizeof out);
    CHECK(rc == 1, "mpiCheck exit code %d", rc);
    CHECK(strstr(out, "MPI_Send") != NULL, "mpiCheck names the call: %s", out);
    CHECK(strstr(out, "HINT:") != NULL, "mpiCheck hint: %s", out);

    rc = t_run_child(child_log_rank1, 1, out, sizeof out);
    CHECK(rc == 0 && out[0] == '\0', "log_info silent on rank 1, got '%s'", out);
    rc = t_run_child(child_log_rank1, 2, out, sizeof out);
    CHECK(strcmp(out, "[rank 1] warning: warn 7\n") == 0, "log_warn prefix: '%s'", out);
    rc = t_run_child(child_log_rank0, 1, out, sizeof out);
    CHECK(strcmp(out, "hello 42\n") == 0, "log_info on rank 0: '%s'", out);

    // atomic write replaces content whole and leaves no temporary behind
    const char* path = "/tmp/zsseg_test_atomic.txt";
    file_write_atomic(path, "first", 5);
    file_write_atomic(path, "second!", 7);
    size_t len = 0;
    char* got = file_read_all(path, &len);
    CHECK(len == 7 && strcmp(got, "second!") == 0, "atomic content '%s' (%zu)", got, len);
    CHECK(access("/tmp/zsseg_test_atomic.txt.tmp", F_OK) != 0, "temporary file removed");
    free(got);
    test_irregular_files();
    return t_report("test_common");
}
