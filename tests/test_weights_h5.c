// Weights in HDF5: bitwise round trip and layout, the all-at-once mismatch
// report (captured from a forked child, as a user sees it), partial loads,
// missing/non-HDF5/truncated files, and the `ckpt info` listing.
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "testing.h"
#include "weights_h5.h"

#define FILE_OK "/tmp/zsseg_test_weights.h5"
#define FILE_TRUNC "/tmp/zsseg_test_weights_trunc.h5"
#define FILE_TEXT "/tmp/zsseg_test_weights_text.h5"



// The saved model: a conv weight, a bias, a BN pair, a 1-element tensor.
static void build_model(ParamTable* pt) {
    param_table_init(pt);
    int w[4] = {4, 3, 3, 3}, c4[1] = {4}, w2[4] = {5, 4, 1, 1}, one[1] = {1};
    param_declare(pt, "backbone.layer1.conv1.conv.weight", REGION_BACKBONE, PARAM_CONV_WEIGHT, 4,
                  w);
    param_declare(pt, "backbone.layer1.conv1.bn.weight", REGION_FROZEN, PARAM_BN_WEIGHT, 1, c4);
    param_declare(pt, "backbone.layer1.conv1.bn.running_var", REGION_FROZEN, PARAM_BN_VAR, 1, c4);
    param_declare(pt, "dc.gan.weight", REGION_DC, PARAM_CONV_WEIGHT, 4, w2);
    param_declare(pt, "dc.gan.bias", REGION_DC, PARAM_BIAS, 1, one);
    param_table_finalize(pt);
}

// The same model with dc.gan.weight renamed, an extra tensor the file lacks,
// and the conv weight with 2 input channels instead of 3.
static void build_mismatched(ParamTable* pt) {
    param_table_init(pt);
    int w[4] = {4, 2, 3, 3}, c4[1] = {4}, w2[4] = {5, 4, 1, 1}, one[1] = {1}, c7[1] = {7};
    param_declare(pt, "backbone.layer1.conv1.conv.weight", REGION_BACKBONE, PARAM_CONV_WEIGHT, 4,
                  w);
    param_declare(pt, "backbone.layer1.conv1.bn.weight", REGION_FROZEN, PARAM_BN_WEIGHT, 1, c4);
    param_declare(pt, "backbone.layer1.conv1.bn.running_var", REGION_FROZEN, PARAM_BN_VAR, 1, c4);
    param_declare(pt, "dc.trunk.weight", REGION_DC, PARAM_CONV_WEIGHT, 4, w2);
    param_declare(pt, "dc.gan.bias", REGION_DC, PARAM_BIAS, 1, one);
    param_declare(pt, "cm.fuse.bias", REGION_CM, PARAM_BIAS, 1, c7);
    param_table_finalize(pt);
}

// The model plus one tensor the file lacks (a partial load's usual case).
static void build_superset(ParamTable* pt) {
    param_table_init(pt);
    int w[4] = {4, 3, 3, 3}, c4[1] = {4}, w2[4] = {5, 4, 1, 1}, one[1] = {1}, c7[1] = {7};
    param_declare(pt, "backbone.layer1.conv1.conv.weight", REGION_BACKBONE, PARAM_CONV_WEIGHT, 4,
                  w);
    param_declare(pt, "backbone.layer1.conv1.bn.weight", REGION_FROZEN, PARAM_BN_WEIGHT, 1, c4);
    param_declare(pt, "backbone.layer1.conv1.bn.running_var", REGION_FROZEN, PARAM_BN_VAR, 1, c4);
    param_declare(pt, "cm.fuse.bias", REGION_CM, PARAM_BIAS, 1, c7);
    param_declare(pt, "dc.gan.weight", REGION_DC, PARAM_CONV_WEIGHT, 4, w2);
    param_declare(pt, "dc.gan.bias", REGION_DC, PARAM_BIAS, 1, one);
    param_table_finalize(pt);
}

static void load_into(void (*build)(ParamTable*), const char* path, int strict) {
    ParamTable pt;
    build(&pt);
    float* p = (float*)calloc(pt.total, sizeof(float));
    weights_load_h5(path, &pt, p, strict);
}
static void child_mismatch_strict(void) { load_into(build_mismatched, FILE_OK, 1); }
static void child_mismatch_partial(void) { load_into(build_mismatched, FILE_OK, 0); }
static void child_superset_strict(void) { load_into(build_superset, FILE_OK, 1); }
static void child_missing_file(void) { load_into(build_model, "/tmp/no/such/weights.h5", 1); }
static void child_text_file(void) { load_into(build_model, FILE_TEXT, 1); }
static void child_truncated(void) { load_into(build_model, FILE_TRUNC, 1); }
static void child_list_truncated(void) { weights_list_h5(FILE_TRUNC, stdout); }

#define HAS(s) CHECK(strstr(out, (s)) != NULL, "message lacks \"%s\":\n%s", (s), out)

// With an argument: only write the small model to that path (the file the
// `zsseg ckpt info` CLI test lists).
int main(int argc, char** argv) {
    char out[16384];
    ParamTable pt;
    build_model(&pt);
    float* p = (float*)malloc(pt.total * sizeof(float));
    t_fill_normal(p, pt.total, 3, 1.0f);
    p[7] = -0.0f;  // signed zero and a denormal must survive bitwise
    p[8] = 1e-40f;
    if (argc == 2) {
        weights_save_h5(argv[1], &pt, p);
        return 0;
    }

    // ---- round trip, bitwise; writing over an existing file replaces it
    unlink(FILE_OK);
    float* junk = (float*)calloc(pt.total, sizeof(float));
    weights_save_h5(FILE_OK, &pt, junk);
    weights_save_h5(FILE_OK, &pt, p);
    CHECK(access(FILE_OK ".tmp", F_OK) != 0, "temporary file left behind");
    float* q = (float*)calloc(pt.total, sizeof(float));
    int n = weights_load_h5(FILE_OK, &pt, q, 1);
    CHECK(n == pt.n, "loaded %d of %d tensors", n, pt.n);
    CHECK(memcmp(p, q, pt.total * sizeof(float)) == 0, "round trip is not bitwise");

    // ---- layout: the dataset of a tensor sits at its '/' path with its shape
    {
        hid_t f = H5Fopen(FILE_OK, H5F_ACC_RDONLY, H5P_DEFAULT);
        hid_t ds = H5Dopen2(f, "/params/backbone/layer1/conv1/conv/weight", H5P_DEFAULT);
        CHECK(ds >= 0, "dataset at /params/backbone/layer1/conv1/conv/weight");
        hid_t sp = H5Dget_space(ds), ty = H5Dget_type(ds);
        hsize_t dims[4] = {0};
        int nd = H5Sget_simple_extent_dims(sp, dims, NULL);
        CHECK(nd == 4 && dims[0] == 4 && dims[1] == 3 && dims[2] == 3 && dims[3] == 3,
              "stored shape %d (%llu, %llu, ...)", nd, (unsigned long long)dims[0],
              (unsigned long long)dims[1]);
        CHECK(H5Tequal(ty, H5T_IEEE_F32LE) > 0, "stored as float32 little endian");
        float first = 0.0f;
        hid_t ds2 = H5Dopen2(f, "/params/dc/gan/bias", H5P_DEFAULT);
        H5Dread(ds2, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, &first);
        CHECK(first == p[pt.t[param_find(&pt, "dc.gan.bias")].offset], "dc.gan.bias value");
        H5Dclose(ds2);
        H5Tclose(ty);
        H5Sclose(sp);
        H5Dclose(ds);
        H5Fclose(f);
    }

    // ---- every mismatch reported at once, with the file and a hint
    int rc = t_run_child(child_mismatch_strict, 2, out, sizeof out);
    CHECK(rc == 1, "mismatch exit code %d", rc);
    HAS("weights file '" FILE_OK "' does not match the model");
    HAS("2 missing, 1 unexpected, 1 shape/dtype mismatches");
    HAS("missing in file:     dc.trunk.weight (5, 4, 1, 1)");
    HAS("missing in file:     cm.fuse.bias (7)");
    HAS("unexpected in file:  dc.gan.weight (5, 4, 1, 1)");
    HAS("shape/dtype differs: backbone.layer1.conv1.conv.weight: model (4, 2, 3, 3) float32, "
        "file (4, 3, 3, 3) float32");
    HAS("HINT:");
    HAS("convert_weights.py");
    // A partial load forgives missing/unexpected names, not a shape difference.
    rc = t_run_child(child_mismatch_partial, 2, out, sizeof out);
    CHECK(rc == 1, "partial load with a shape mismatch exit code %d", rc);
    HAS("(partial load)");
    HAS("backbone.layer1.conv1.conv.weight: model (4, 2, 3, 3)");
    rc = t_run_child(child_superset_strict, 2, out, sizeof out);
    CHECK(rc == 1, "strict load of a superset exit code %d", rc);
    HAS("1 missing, 0 unexpected, 0 shape/dtype mismatches");

    // ---- partial load: tensors absent from the file keep their values
    {
        ParamTable sup;
        build_superset(&sup);
        float* s = (float*)malloc(sup.total * sizeof(float));
        for (size_t i = 0; i < sup.total; i++) s[i] = 42.0f;
        n = weights_load_h5(FILE_OK, &sup, s, 0);
        CHECK(n == 5, "partial load count %d", n);
        const ParamTensor* cm = &sup.t[param_find(&sup, "cm.fuse.bias")];
        CHECK(s[cm->offset] == 42.0f && s[cm->offset + 6] == 42.0f, "cm.fuse.bias kept");
        for (int i = 0; i < sup.n; i++) {
            int k = param_find(&pt, sup.t[i].name);
            if (k < 0) continue;
            CHECK(
                memcmp(s + sup.t[i].offset, p + pt.t[k].offset, pt.t[k].numel * sizeof(float)) == 0,
                "%s loaded at its own offset", sup.t[i].name);
        }
        free(s);
        param_table_free(&sup);
    }

    // ---- broken files: missing, not HDF5, truncated
    rc = t_run_child(child_missing_file, 2, out, sizeof out);
    CHECK(rc == 1, "missing file exit code %d", rc);
    HAS("cannot read weights file '/tmp/no/such/weights.h5'");
    static const char zip[] = "PK\x03\x04 this is a zip, like a .pth";
    file_write_atomic(FILE_TEXT, zip, sizeof zip - 1);
    rc = t_run_child(child_text_file, 2, out, sizeof out);
    CHECK(rc == 1, "non-HDF5 exit code %d", rc);
    HAS("'" FILE_TEXT "' is not an HDF5 file");
    HAS("convert_weights.py");
    {
        size_t len = 0;
        char* bytes = file_read_all(FILE_OK, &len);
        file_write_atomic(FILE_TRUNC, bytes, len / 2);
        free(bytes);
    }
    rc = t_run_child(child_truncated, 2, out, sizeof out);
    CHECK(rc == 1, "truncated exit code %d", rc);
    HAS(FILE_TRUNC);
    HAS("truncated");
    CHECK(strstr(out, "HDF5-DIAG") == NULL, "HDF5's own error stack leaked:\n%s", out);
    rc = t_run_child(child_list_truncated, 2, out, sizeof out);
    CHECK(rc == 1, "listing a truncated file exit code %d", rc);
    HAS(FILE_TRUNC);

    // ---- listing
    {
        char* text = NULL;
        size_t len = 0;
        FILE* fp = open_memstream(&text, &len);
        weights_list_h5(FILE_OK, fp);
        fclose(fp);
        const char* want[] = {"/params/backbone/layer1/conv1/conv/weight",
                              "float32  (4, 3, 3, 3)\n",
                              "/params/backbone/layer1/conv1/bn/running_var",
                              "/params/dc/gan/bias",
                              "float32  (1)\n",
                              "5 datasets, 137 elements, 0.0 MB\n"};
        for (int i = 0; i < 6; i++)
            CHECK(strstr(text, want[i]) != NULL, "listing lacks \"%s\":\n%s", want[i], text);
        int lines = 0;
        for (char* c = text; *c; c++) lines += *c == '\n';
        CHECK(lines == 7, "listing has %d lines (path, 5 datasets, summary):\n%s", lines, text);
        free(text);
    }

    free(junk);
    free(q);
    free(p);
    param_table_free(&pt);
    unlink(FILE_OK);
    unlink(FILE_TRUNC);
    unlink(FILE_TEXT);
    return t_report("test_weights_h5");
}
