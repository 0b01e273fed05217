// Shared by checkpoint.c (save, load, info, list) and ckpt_verify.c (the
// checks): the dataset walk, dataset checksums and the checked attributes.
// Not part of the public interface (checkpoint.h).
#ifndef ZSSEG_CKPT_INTERNAL_H
#define ZSSEG_CKPT_INTERNAL_H

#include <hdf5.h>
#include <stdint.h>

#define CKPT_MAX_RANK 8
#define CKPT_CRC_PREFIX "crc32c:"
#define CKPT_ATTRS_CRC "crc32c:@attrs"  // /meta: the checksum of CkptAttrs

extern const char* const ckpt_optim_names[3];  // "e", "d", "g"

typedef struct {
    char** v;  // "/params/...", absolute
    int n, cap;
} CkptNames;

// Every dataset of the file; -1 when the file cannot be walked (corrupt).
int ckpt_names_collect(hid_t file, CkptNames* ns);
void ckpt_names_free(CkptNames* ns);
// Bytes the dataset's shape and datatype call for; 0 on overflow or error.
hsize_t ckpt_dataset_bytes(hid_t ds, int* ndim, hsize_t* dims);
// CRC-32C of the dataset's bytes as stored; -1 when it cannot be read.
int ckpt_dataset_crc(hid_t ds, uint32_t* crc);

// The attributes a resume reads, as found in the file.
typedef struct {
    char kind[16];
    long long step;
    unsigned long long span_lo, span_n;
} CkptOptimAttrs;

typedef struct {
    long long format_version, world_size;  // /meta
    long long iter, stage, iter_in_stage, mixed_pos, st_round, data_epoch, data_cursor;
    unsigned long long seed;
    double best_metric;
    char st_file[512];  // as CkptState
    CkptOptimAttrs optim[3];  // ckpt_optim_names order
} CkptAttrs;

// Reads every CkptAttrs attribute (each a single value of a readable type,
// strings shorter than their field); NULL or a heap message naming path and
// the first missing one. Call silenced (h5_quiet).
char* ckpt_attrs_read(hid_t file, CkptAttrs* a, const char* path);
// CRC-32C of the canonical serialisation: per attribute, in a fixed order,
// "GROUP/NAME\0" then the value (integers and float bits as 8 bytes little
// endian, strings up to and including their NUL); then every dataset path of
// ns with its NUL, so that a lost dataset fails it too.
uint32_t ckpt_attrs_crc(const CkptAttrs* a, const CkptNames* ns);
// The names of the attributes the format defines in group ("/state",
// "/meta", "/optim/e", ...; no checksums), in listing order; returns the count.
int ckpt_attr_names(const char* group, const char** names, int cap);

// The iteration of a file named exactly iter_%08ld.h5 (any directory), else -1.
long ckpt_iter_of_name(const char* path);

#endif  // ZSSEG_CKPT_INTERNAL_H
