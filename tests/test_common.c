// Check macros, logging and atomic files: each failure path runs in a forked
// child whose stderr/stdout is captured, so the test asserts the exact message
// a user would see and the non-zero exit.
#include <hdf5.h>
#include <mpi.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
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
    return t_report("test_common");
}
