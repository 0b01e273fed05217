// Error checking, logging and checked file I/O shared by every module.
// Each check prints file:line, the failing call, the library's message and a
// HINT the user can act on, then exits (MPI_Abort once MPI is initialised).
#ifndef ZSSEG_COMMON_H
#define ZSSEG_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

// ---------------------------------------------------------------- process state
// Rank and world size as known to the logger (0/1 until dist code sets them).
extern int zs_rank;
extern int zs_world;
void zs_set_rank(int rank, int world);

// Print "file:line: what: detail" plus "HINT: hint" on stderr, then exit(1) or
// MPI_Abort. Never returns.
void zs_fail(const char* file, int line, const char* what, const char* detail, const char* hint)
    __attribute__((noreturn));
// printf-style variant of zs_fail for callers that build the message.
void zs_failf(const char* file, int line, const char* hint, const char* fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));
#define ZS_FAIL(hint, ...) zs_failf(__FILE__, __LINE__, hint, __VA_ARGS__)

// ---------------------------------------------------------------- logging
// log_info: rank 0 only, stdout. log_warn/log_error: any rank, stderr, "[rank r]".
void log_info(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// ---------------------------------------------------------------- library checks
// mpiCheck: MPI calls return MPI_SUCCESS or an error class.
void mpi_check(int err, const char* call, const char* file, int line);
#define mpiCheck(call) mpi_check((call), #call, __FILE__, __LINE__)

// h5Check: HDF5 calls return a negative value on failure.
void h5_check(long long ret, const char* call, const char* file, int line);
#define h5Check(call) h5_check((long long)(call), #call, __FILE__, __LINE__)

// ---------------------------------------------------------------- memory
void* malloc_check(size_t size, const char* file, int line);
void* calloc_check(size_t n, size_t size, const char* file, int line);
#define mallocCheck(size) malloc_check((size), __FILE__, __LINE__)
#define callocCheck(n, size) calloc_check((n), (size), __FILE__, __LINE__)

// ---------------------------------------------------------------- strings
// printf into a new heap string (the caller frees it): messages handed to callers.
char* strf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// ---------------------------------------------------------------- checked file I/O
// All name the path in their message, so a user sees which file is at fault.
FILE* fopen_check(const char* path, const char* mode, const char* file, int line);
void fread_check(void* ptr, size_t size, size_t n, FILE* fp, const char* path, const char* file,
                 int line);
void fwrite_check(const void* ptr, size_t size, size_t n, FILE* fp, const char* path,
                  const char* file, int line);
void fclose_check(FILE* fp, const char* path, const char* file, int line);
#define fopenCheck(path, mode) fopen_check((path), (mode), __FILE__, __LINE__)
#define freadCheck(ptr, size, n, fp, path) fread_check((ptr), (size), (n), (fp), (path), __FILE__, __LINE__)
#define fwriteCheck(ptr, size, n, fp, path) fwrite_check((ptr), (size), (n), (fp), (path), __FILE__, __LINE__)
#define fcloseCheck(fp, path) fclose_check((fp), (path), __FILE__, __LINE__)

// Inputs must be regular files: a FIFO or device would block the reader forever,
// a directory reads as garbage. file_readable_problem: NULL when PATH is a
// readable regular file, else "cannot read WHAT 'PATH': <errno text>" or "'PATH'
// is a FIFO, not a regular file" (caller frees) — for readers that report
// errors themselves (HDF5 files, images, configs). file_check_regular: fatal
// unless PATH is a regular file or missing (the open reports that); fopen_check
// does it for every read mode.
char* file_readable_problem(const char* path, const char* what);
void file_check_regular(const char* path, const char* file, int line);
#define fileCheckRegular(path) file_check_regular((path), __FILE__, __LINE__)
#define FILE_REGULAR_HINT \
    "give the path of a regular file: a FIFO, device or directory cannot be read as one"
// Append-only logs of a run directory: never through a symbolic link (it could
// point anywhere) nor into a FIFO; created 0644 if missing. Fatal on refusal.
FILE* file_open_append_nofollow(const char* path);

// Whole file into a NUL-terminated heap buffer (length in *len if non-NULL).
char* file_read_all(const char* path, size_t* len);
// Write a file atomically: PATH.tmp, fsync, rename over PATH, fsync the directory.
// A crash leaves either the old or the new content, never a mix.
void file_write_atomic(const char* path, const void* data, size_t len);
// The last step of an atomic write done by another writer (HDF5): fsync the
// finished file TMP, rename it over PATH, fsync the directory.
void file_commit(const char* tmp, const char* path);
// mkdir -p: create PATH and its missing parents (fatal, naming the directory).
void dir_create(const char* path);

// ---------------------------------------------------------------- checksums
// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), table-driven: the
// TensorBoard record checksum and the checkpoint dataset checksum.
// crc32c_extend continues a CRC over more bytes:
// crc32c(ab) == crc32c_extend(crc32c(a), b), crc32c(x) == crc32c_extend(0, x).
uint32_t crc32c(const void* data, size_t n);
uint32_t crc32c_extend(uint32_t crc, const void* data, size_t n);

// The shortest "%.*g" text of v that reads back (strtod) to exactly v.
void double_text_shortest(char* out, size_t cap, double v);

#endif  // ZSSEG_COMMON_H
