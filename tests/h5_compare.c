// h5_compare A.h5 B.h5 RTOL: every float32 dataset of A must exist in B with
// the same shape and |a - b| <= RTOL * max(|a|max over the dataset, 1e-30)
// elementwise (RTOL 0 = bitwise). Prints the worst dataset and its relative
// difference; exit 0 within tolerance, 1 otherwise, 2 on a usage error.
// Used by the world-size equivalence and resume tests.
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    hid_t b;
    double rtol, worst;
    char worst_name[512];
    int n, bad;
} Cmp;

static float* read_all(hid_t ds, hsize_t* n) {
    hid_t sp = H5Dget_space(ds);
    *n = (hsize_t)H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    float* v = malloc((*n ? *n : 1) * sizeof(float));
    if (H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0) {
        free(v);
        return NULL;
    }
    return v;
}

static herr_t visit(hid_t a, const char* name, const H5O_info_t* info, void* data) {
    Cmp* c = data;
    if (info->type != H5O_TYPE_DATASET) return 0;
    hid_t da = H5Dopen2(a, name, H5P_DEFAULT);
    hid_t ta = H5Dget_type(da);
    int is_float = H5Tget_class(ta) == H5T_FLOAT;
    H5Tclose(ta);
    if (!is_float) {
        H5Dclose(da);
        return 0;
    }
    if (H5Lexists(c->b, name, H5P_DEFAULT) <= 0) {
        printf("%s: missing in the second file\n", name);
        c->bad = 1;
        H5Dclose(da);
        return 0;
    }
    hid_t db = H5Dopen2(c->b, name, H5P_DEFAULT);
    hsize_t na = 0, nb = 0;
    float *va = read_all(da, &na), *vb = read_all(db, &nb);
    if (!va || !vb || na != nb) {
        printf("%s: unreadable or different sizes (%llu vs %llu)\n", name, (unsigned long long)na,
               (unsigned long long)nb);
        c->bad = 1;
    } else {
        double amax = 1e-30, dmax = 0.0;
        for (hsize_t i = 0; i < na; i++) {
            if (fabs(va[i]) > amax) amax = fabs(va[i]);
            double d = fabs((double)va[i] - (double)vb[i]);
            if (d > dmax || isnan(d)) dmax = isnan(d) ? INFINITY : d;
        }
        double rel = dmax / amax;
        if (c->rtol == 0.0 ? memcmp(va, vb, na * sizeof(float)) != 0 : rel > c->rtol) c->bad = 1;
        if (rel >= c->worst) {
            c->worst = rel;
            snprintf(c->worst_name, sizeof c->worst_name, "%s", name);
        }
        c->n++;
    }
    free(va), free(vb);
    H5Dclose(da), H5Dclose(db);
    return 0;
}

int main(int argc, char** argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: h5_compare A.h5 B.h5 RTOL\n");
        return 2;
    }
    Cmp c = {0};
    c.rtol = atof(argv[3]);
    hid_t a = H5Fopen(argv[1], H5F_ACC_RDONLY, H5P_DEFAULT);
    c.b = H5Fopen(argv[2], H5F_ACC_RDONLY, H5P_DEFAULT);
    if (a < 0 || c.b < 0) {
        fprintf(stderr, "h5_compare: cannot open %s or %s\n", argv[1], argv[2]);
        return 2;
    }
    H5Ovisit2(a, H5_INDEX_NAME, H5_ITER_NATIVE, visit, &c, H5O_INFO_BASIC);
    printf("%d float datasets compared; largest relative difference %.3g (%s); tolerance %g: %s\n",
           c.n, c.worst, c.worst_name, c.rtol, c.bad || c.n == 0 ? "FAIL" : "ok");
    H5Fclose(a), H5Fclose(c.b);
    return c.bad || c.n == 0 ? 1 : 0;
}
