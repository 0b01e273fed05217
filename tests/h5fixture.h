// Reading PyTorch-produced fixtures (tests/fixtures/*.h5) and comparing
// tensors with a scale-relative error: max|got - want| / max|want|, the worst
// element printed on failure.
#ifndef ZSSEG_H5FIXTURE_H
#define ZSSEG_H5FIXTURE_H

#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "testing.h"

static inline int fx_exists(hid_t f, const char* path) {
    return H5Lexists(f, path, H5P_DEFAULT) > 0;
}

// Dataset at path as `type` (H5T_NATIVE_FLOAT, _DOUBLE, _UINT8, _INT32, _INT64);
// returns a malloc'd buffer and its element count in *n.
static inline void* fx_read(hid_t f, const char* path, hid_t type, size_t* n) {
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    if (d < 0) {
        fprintf(stderr, "fixture: missing dataset %s\n", path);
        exit(1);
    }
    hid_t sp = H5Dget_space(d);
    hssize_t cnt = H5Sget_simple_extent_npoints(sp);
    void* buf = malloc((size_t)(cnt ? cnt : 1) * H5Tget_size(type));
    if (H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        fprintf(stderr, "fixture: cannot read %s\n", path);
        exit(1);
    }
    H5Sclose(sp);
    H5Dclose(d);
    if (n) *n = (size_t)cnt;
    return buf;
}

static inline double fx_scalar(hid_t f, const char* path) {
    double* v = fx_read(f, path, H5T_NATIVE_DOUBLE, NULL);
    double x = *v;
    free(v);
    return x;
}

// The /config string (fixed-length ASCII), NUL-terminated.
static inline char* fx_string(hid_t f, const char* path) {
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    hid_t t = H5Dget_type(d);
    size_t len = H5Tget_size(t);
    char* s = calloc(len + 1, 1);
    H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, s);
    H5Tclose(t);
    H5Dclose(d);
    return s;
}

// Scale-relative max error of got against want; returns it and counts a check.
static inline double fx_compare(const char* what, const float* got, const float* want, size_t n,
                                double tol) {
    double scale = 0.0, worst = -1.0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs((double)want[i]));
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - (double)want[i]);
        if (isnan(got[i])) e = INFINITY;
        if (e > worst) worst = e, wi = i;
    }
    double rel = scale > 0 ? worst / scale : worst;
    t_checks++;
    if (!(rel <= tol)) {
        t_failures++;
        fprintf(stderr,
                "FAIL %s: relative error %.3g > %.1g (worst [%zu]: got %.9g want %.9g, scale %.3g)\n",
                what, rel, tol, wi, got[wi], want[wi], scale);
    }
    return rel;
}

// Compare got (n floats) with the fixture dataset at path.
static inline double fx_check(hid_t f, const char* path, const float* got, size_t n, double tol) {
    size_t m = 0;
    float* want = fx_read(f, path, H5T_NATIVE_FLOAT, &m);
    double rel = INFINITY;
    if (m != n) {
        t_checks++, t_failures++;
        fprintf(stderr, "FAIL %s: %zu elements, fixture has %zu\n", path, n, m);
    } else {
        rel = fx_compare(path, got, want, n, tol);
    }
    free(want);
    return rel;
}

#endif  // ZSSEG_H5FIXTURE_H
