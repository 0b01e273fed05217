// The self-training round file (st_store), one process:
//   - write + read back: labels, weights and attributes bit for bit; format,
//     version, CRC-32C attributes, id string size and chunking as documented;
//     no PATH.tmp left;
//   - every damaged copy is an error message naming the file (and the
//     dataset) with s left empty, never a crash: missing, not HDF5, truncated
//     at several points, every byte of a compressed chunk flipped, one value
//     of each dataset rewritten in place (the CRC catches it), another format;
//   - other shape (n, H or W) and other ids name what differs.
#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "dist.h"
#include "st_store.h"
#include "st_store_fixture.h"
#include "testing.h"
#include "weights_h5.h"

static char dir[] = "/tmp/test_st_store_XXXXXX";
static char good[512];
static StStore ref;

static void has(const char* s, const char* sub, int line) {
    CHECK(s && strstr(s, sub), "line %d: message lacks \"%s\": %s", line, sub, s ? s : "(null)");
}
#define HAS(s, sub) has((s), (sub), __LINE__)

// The read of path must fail, naming it and sub1 (and sub2), with s empty.
static void expect_error(const char* path, int n, int H, int W, const char* const* ids,
                         const char* sub1, const char* sub2, int line) {
    StStore s;
    char* err = st_store_read(&s, path, n, H, W, ids);
    CHECK(err != NULL, "line %d: st_store_read accepted %s", line, path);
    has(err, path, line);
    has(err, sub1, line);
    if (sub2) has(err, sub2, line);
    CHECK(!s.labels && !s.weights && s.n == 0, "line %d: the store is not left empty", line);
    free(err);
}
#define EXPECT_ERROR(path, n, H, W, ids, sub1, sub2) \
    expect_error((path), (n), (H), (W), (ids), (sub1), (sub2), __LINE__)
#define EXPECT_FILE_ERROR(path, sub1, sub2) \
    EXPECT_ERROR((path), STF_N, STF_H, STF_W, stf_ids, (sub1), (sub2))

// good's first `keep` bytes (0: all) into dst, byte `flip` (-1: none) inverted.
static void copy_damaged(const char* dst, size_t keep, long flip) {
    size_t n = 0;
    char* data = file_read_all(good, &n);
    if (flip >= 0) data[flip] = (char)~data[flip];
    FILE* fp = fopenCheck(dst, "wb");
    fwriteCheck(data, 1, keep && keep < n ? keep : n, fp, dst);
    fcloseCheck(fp, dst);
    free(data);
}

// ---------------------------------------------------------------- round trip
static void test_round_trip(const Dist* d) {
    long holes = 0;
    for (size_t i = 0; i < (size_t)STF_N * STF_H * STF_W; i++) holes += ref.labels[i] == 255;
    CHECK(holes > 20 && holes < 100, "fixture: %ld of 210 labels are 255", holes);
    snprintf(good, sizeof good, "%s/round_02.h5", dir);
    st_store_write(&ref, good, stf_ids, 0, STF_N, d);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", good);
    CHECK(access(good, F_OK) == 0 && access(tmp, F_OK) != 0, "committed, no .tmp left");

    StStore s;
    char* err = st_store_read(&s, good, STF_N, STF_H, STF_W, stf_ids);
    CHECK(!err, "read back: %s", err ? err : "");
    if (err) {
        free(err);
        return;
    }
    const size_t nHW = (size_t)STF_N * STF_H * STF_W;
    CHECK(s.n == STF_N && s.H == STF_H && s.W == STF_W, "shape %d x %d x %d", s.n, s.H, s.W);
    CHECK(memcmp(s.labels, ref.labels, nHW) == 0, "labels differ");
    CHECK(memcmp(s.weights, ref.weights, nHW * sizeof(float)) == 0, "weights differ");
    CHECK(s.round == 2 && s.iteration == 123456789012L && strcmp(s.mode, "zs3") == 0,
          "round %d iteration %ld mode '%s'", s.round, s.iteration, s.mode);
    st_store_free(&s);

    // the layout as documented, read with plain HDF5
    hid_t f = H5Fopen(good, H5F_ACC_RDONLY, H5P_DEFAULT);
    int format = 0;
    uint32_t crc[3] = {0};
    char version[64] = "";
    CHECK(h5_attr_read(f, "format", H5T_NATIVE_INT, &format) == 0 && format == 1, "format %d",
          format);
    CHECK(h5_attr_read_string(f, "zsseg_version", version, sizeof version) == 0 &&
              strcmp(version, ZSSEG_VERSION) == 0,
          "zsseg_version '%s'", version);
    h5_attr_read(f, "crc32c:/labels", H5T_NATIVE_UINT32, &crc[0]);
    h5_attr_read(f, "crc32c:/weights", H5T_NATIVE_UINT32, &crc[1]);
    h5_attr_read(f, "crc32c:/image_ids", H5T_NATIVE_UINT32, &crc[2]);
    CHECK(crc[0] == crc32c(ref.labels, nHW) && crc[1] == crc32c(ref.weights, nHW * 4),
          "CRC attributes 0x%08x 0x%08x", crc[0], crc[1]);
    hid_t ds = H5Dopen2(f, "/image_ids", H5P_DEFAULT);
    hid_t t = H5Dget_type(ds);
    const size_t len = strlen("2008_000123_long") + 1;
    char* id_buf = calloc(STF_N, len);
    CHECK(H5Tget_size(t) == len && H5Dread(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, id_buf) >= 0 &&
              strcmp(id_buf + 2 * len, "2008_000123_long") == 0 &&
              strcmp(id_buf + 1 * len, "a") == 0 && crc[2] == crc32c(id_buf, STF_N * len),
          "/image_ids: %zu-byte strings, CRC 0x%08x", H5Tget_size(t), crc[2]);
    free(id_buf);
    H5Tclose(t);
    H5Dclose(ds);
    ds = H5Dopen2(f, "/labels", H5P_DEFAULT);
    hid_t dcpl = H5Dget_create_plist(ds);
    hsize_t chunk[3] = {0};
    CHECK(H5Pget_chunk(dcpl, 3, chunk) == 3 && chunk[0] == 1 && chunk[1] == STF_H &&
              chunk[2] == STF_W && H5Pget_nfilters(dcpl) == 2,
          "/labels chunk (%llu, %llu, %llu), %d filters", (unsigned long long)chunk[0],
          (unsigned long long)chunk[1], (unsigned long long)chunk[2], H5Pget_nfilters(dcpl));
    H5Pclose(dcpl);
    H5Dclose(ds);
    H5Fclose(f);
}

// ---------------------------------------------------------------- damage
static void test_unreadable(void) {
    char p[600];
    snprintf(p, sizeof p, "%s/no_such.h5", dir);
    EXPECT_FILE_ERROR(p, "No such file or directory", NULL);
    snprintf(p, sizeof p, "%s/text.h5", dir);
    file_write_atomic(p, "not hdf5\n", 9);
    EXPECT_FILE_ERROR(p, "is not an HDF5 file", NULL);
    size_t size = 0;
    free(file_read_all(good, &size));
    snprintf(p, sizeof p, "%s/cut.h5", dir);
    const size_t cuts[] = {size / 4, size / 2, 3 * size / 4, size - 1};
    for (int i = 0; i < 4; i++) {
        copy_damaged(p, cuts[i], -1);
        EXPECT_FILE_ERROR(p, "truncated or corrupt", NULL);
    }
}

// Every byte of one compressed chunk of each 3-D dataset inverted in turn:
// zlib's Adler-32 or the CRC-32C catches each one.
static void test_flipped_chunks(void) {
    char p[600];
    snprintf(p, sizeof p, "%s/flipped.h5", dir);
    const char* names[2] = {"/labels", "/weights"};
    for (int k = 0; k < 2; k++) {
        hid_t f = H5Fopen(good, H5F_ACC_RDONLY, H5P_DEFAULT);
        hid_t ds = H5Dopen2(f, names[k], H5P_DEFAULT);
        hsize_t at[3] = {3, 0, 0}, size = 0;
        haddr_t addr = 0;
        unsigned mask = 0;
        herr_t rc = H5Dget_chunk_info_by_coord(ds, at, &mask, &addr, &size);
        H5Dclose(ds);
        H5Fclose(f);
        CHECK(rc >= 0 && size > 8, "%s: chunk 3 at %llu, %llu bytes", names[k],
              (unsigned long long)addr, (unsigned long long)size);
        int missed = 0;
        for (hsize_t b = 0; b < size; b++) {
            copy_damaged(p, 0, (long)(addr + b));
            StStore s;
            char* err = st_store_read(&s, p, STF_N, STF_H, STF_W, stf_ids);
            missed += !err || !strstr(err, names[k]) || !strstr(err, p) || s.labels;
            free(err);
            st_store_free(&s);
        }
        CHECK(missed == 0, "%s: %d of %llu flipped bytes not reported", names[k], missed,
              (unsigned long long)size);
    }
}

// One value of dataset k rewritten through HDF5: the file is valid, only the
// stored CRC-32C tells.
static void tamper(const char* dst, int k) {
    copy_damaged(dst, 0, -1);
    hid_t f = H5Fopen(dst, H5F_ACC_RDWR, H5P_DEFAULT);
    const char* names[3] = {"/labels", "/weights", "/image_ids"};
    hid_t ds = H5Dopen2(f, names[k], H5P_DEFAULT);
    hid_t fs = H5Dget_space(ds);
    hsize_t at[3] = {4, 2, 3}, one = 1;
    hid_t ms = H5Screate_simple(1, &one, NULL);
    H5Sselect_elements(fs, H5S_SELECT_SET, 1, at);
    const size_t i = (size_t)(4 * STF_H + 2) * STF_W + 3;
    uint8_t lab = (uint8_t)(ref.labels[i] + 1);
    float w = nextafterf(ref.weights[i], 2.0f);
    char id[17] = "2010_004243";
    hid_t t = H5Dget_type(ds);
    const void* v = k == 0 ? (const void*)&lab : k == 1 ? (const void*)&w : id;
    h5Check(H5Dwrite(ds, k == 0 ? H5T_NATIVE_UINT8 : k == 1 ? H5T_NATIVE_FLOAT : t, ms, fs,
                     H5P_DEFAULT, v));
    H5Tclose(t);
    H5Sclose(ms);
    H5Sclose(fs);
    H5Dclose(ds);
    H5Fclose(f);
}

static void test_tampered(void) {
    char p[600];
    snprintf(p, sizeof p, "%s/tampered.h5", dir);
    tamper(p, 0);
    EXPECT_FILE_ERROR(p, "dataset /labels fails its CRC-32C check", "the file is corrupt");
    tamper(p, 1);
    EXPECT_FILE_ERROR(p, "dataset /weights fails its CRC-32C check", "the file is corrupt");
    tamper(p, 2);
    EXPECT_FILE_ERROR(p, "dataset /image_ids fails its CRC-32C check", "the file is corrupt");

    copy_damaged(p, 0, -1);
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t a = H5Aopen(f, "format", H5P_DEFAULT);
    int two = 2;
    h5Check(H5Awrite(a, H5T_NATIVE_INT, &two));
    H5Aclose(a);
    H5Fclose(f);
    EXPECT_FILE_ERROR(p, "self-training round format 2, this zsseg reads format 1", NULL);
}

static void test_mismatch(void) {
    EXPECT_ERROR(good, STF_N + 1, STF_H, STF_W, stf_ids,
                 "dataset /labels has shape (7, 5, 6) but this run needs (8, 5, 6)",
                 "the training split or data.warp_size changed");
    EXPECT_ERROR(good, STF_N, STF_H - 1, STF_W, stf_ids,
                 "has shape (7, 5, 6) but this run needs (7, 4, 6)", NULL);
    EXPECT_ERROR(good, STF_N, STF_H, STF_W + 1, stf_ids,
                 "has shape (7, 5, 6) but this run needs (7, 5, 7)", NULL);
    const char* ids[STF_N];
    memcpy(ids, stf_ids, sizeof ids);
    ids[4] = "2010_004243";
    EXPECT_ERROR(good, STF_N, STF_H, STF_W, ids,
                 "image 4 is '2010_004242' in the file but '2010_004243' in the training split",
                 "the split changed");
    ids[4] = stf_ids[4];
    ids[1] = "a_name_longer_than_any_stored";
    EXPECT_ERROR(good, STF_N, STF_H, STF_W, ids,
                 "image 1 is 'a' in the file but 'a_name_longer_than_any_stored'", NULL);
}

int main(int argc, char** argv) {
    Dist d;
    dist_init(&d, &argc, &argv);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    stf_fill(&ref, 7);
    test_round_trip(&d);
    test_unreadable();
    test_flipped_chunks();
    test_tampered();
    test_mismatch();
    st_store_free(&ref);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (t_failures == 0 && system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
    dist_finalize(&d);
    return t_report("test_st_store");
}
