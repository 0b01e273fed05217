#include "transform.h"

#include <math.h>
#include <string.h>

#include "common.h"
#include "hd_math.h"
#include "rng.h"

// Up to 4 source taps per output index along one axis: two bilinear resizes
// in a row give 2 x 2. n = 0 marks a padded (outside the image) index.
#define TAPS 4
typedef struct {
    int n;
    int idx[TAPS];
    float w[TAPS];
} AxisTaps;

// One OpenCV resize along one axis, from `in` to `out` samples. inv_scale is
// what cv::resize passes down: out / in for a given dsize, fx for a factor;
// OpenCV maps with scale = 1 / inv_scale. same = 1 when cv::resize copies
// instead (dsize equal to the source size, whatever the factor).
typedef struct {
    int in;
    double scale;
    int same;
} Stage;

static Stage stage_make(int in, int out, double inv_scale) {
    Stage s = {in, 1.0 / inv_scale, out == in};
    return s;
}

// cv::INTER_LINEAR taps of dst: fx = (float)((dst + 0.5) * scale - 0.5),
// sx = floor(fx), weights 1 - frac, frac; clamped to the first/last sample.
static void stage_linear(const Stage* s, int dst, int i[2], float w[2]) {
    if (s->same) {
        i[0] = i[1] = dst;
        w[0] = 1.0f;
        w[1] = 0.0f;
        return;
    }
    float fx = (float)((dst + 0.5) * s->scale - 0.5);
    int sx = (int)floorf(fx);
    fx -= (float)sx;
    if (sx < 0) fx = 0.0f, sx = 0;
    if (sx >= s->in - 1) fx = 0.0f, sx = s->in - 1;
    i[0] = sx;
    i[1] = sx < s->in - 1 ? sx + 1 : sx;
    w[0] = 1.0f - fx;
    w[1] = fx;
}

// cv::INTER_NEAREST: min(floor(dst * scale), in - 1).
static int stage_nearest(const Stage* s, int dst) {
    if (s->same) return dst;
    int i = (int)floor(dst * s->scale);
    return i < s->in - 1 ? i : s->in - 1;
}

// Taps of `dst` through the warp stage `a`, then (when b is non-NULL) the
// scale stage b, merged per source index; zero weights are dropped.
static void axis_taps(const Stage* a, const Stage* b, int dst, AxisTaps* t, int* nearest) {
    int mid[2] = {dst, dst};
    float mw[2] = {1.0f, 0.0f};
    if (b) stage_linear(b, dst, mid, mw);
    t->n = 0;
    for (int m = 0; m < 2; m++) {
        int si[2];
        float sw[2];
        stage_linear(a, mid[m], si, sw);
        for (int k = 0; k < 2; k++) {
            float w = mw[m] * sw[k];
            if (w == 0.0f) continue;
            int j = 0;
            while (j < t->n && t->idx[j] != si[k]) j++;
            if (j == t->n) t->idx[t->n++] = si[k], t->w[j] = 0.0f;
            t->w[j] += w;
        }
    }
    *nearest = stage_nearest(a, b ? stage_nearest(b, dst) : dst);
}

// ---------------------------------------------------------------- scratch
typedef struct {
    float* row;                // (W, 3) vertically resampled source row
    AxisTaps *ytaps, *xtaps;   // (out)
    int *ynear, *xnear;        // (out)
} Scratch;

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

static int out_side(const TransformConfig* tc) { return tc->crop > tc->warp ? tc->crop : tc->warp; }

size_t transform_scratch_bytes(const TransformConfig* tc, int max_W) {
    size_t n = (size_t)out_side(tc);
    return 64 + align64((size_t)max_W * 3 * sizeof(float)) + 2 * align64(n * sizeof(AxisTaps)) +
           2 * align64(n * sizeof(int));
}

static Scratch scratch_carve(const TransformConfig* tc, int H, int W, void* mem, size_t bytes) {
    if (H < 1 || W < 1) ZS_FAIL("decode the image before transforming it", "transform: image is %dx%d", H, W);
    if (!mem || bytes < transform_scratch_bytes(tc, W))
        ZS_FAIL("size scratch with transform_scratch_bytes() for the widest image",
                "transform: scratch of %zu bytes is too small for a %d pixel wide image (needs %zu)",
                bytes, W, transform_scratch_bytes(tc, W));
    size_t n = (size_t)out_side(tc);
    char* p = (char*)(((uintptr_t)mem + 63) & ~(uintptr_t)63);
    Scratch s;
    s.row = (float*)p, p += align64((size_t)W * 3 * sizeof(float));
    s.ytaps = (AxisTaps*)p, p += align64(n * sizeof(AxisTaps));
    s.xtaps = (AxisTaps*)p, p += align64(n * sizeof(AxisTaps));
    s.ynear = (int*)p, p += align64(n * sizeof(int));
    s.xnear = (int*)p;
    return s;
}

// ---------------------------------------------------------------- resampling
// out(c, i, j) = (sum_y sum_x ytaps[i] xtaps[j] src(y, x, 2 - c) - mean[c]) / std[c], or 0
// where either axis is padding; labels by the nearest indices, or ignore.
// Vertical pass first over the used source columns (contiguous, vectorises),
// then the horizontal taps per output pixel.
static void resample(const TransformConfig* tc, const Scratch* s, int n, const uint8_t* rgb,
                     const uint8_t* label, int W,
                     float* out_img,       // (3, n, n)
                     uint8_t* out_label) { // (n, n)
    int x_lo = W, x_hi = -1;
    for (int j = 0; j < n; j++)
        for (int k = 0; k < s->xtaps[j].n; k++) {
            if (s->xtaps[j].idx[k] < x_lo) x_lo = s->xtaps[j].idx[k];
            if (s->xtaps[j].idx[k] > x_hi) x_hi = s->xtaps[j].idx[k];
        }
    size_t plane = (size_t)n * n;
    for (int i = 0; i < n; i++) {
        float* ob = out_img + (size_t)i * n;
        float* og = ob + plane;
        float* orr = og + plane;
        const AxisTaps* yt = &s->ytaps[i];
        if (yt->n == 0 || x_hi < 0) {
            for (int j = 0; j < n; j++) ob[j] = og[j] = orr[j] = 0.0f;
            if (out_label) memset(out_label + (size_t)i * n, tc->ignore, (size_t)n);
            continue;
        }
        float* row = s->row + (size_t)x_lo * 3;
        int len = (x_hi - x_lo + 1) * 3;
        const uint8_t* r0 = rgb + ((size_t)yt->idx[0] * W + x_lo) * 3;
        float w0 = yt->w[0];
        for (int t = 0; t < len; t++) row[t] = w0 * (float)r0[t];
        for (int k = 1; k < yt->n; k++) {
            const uint8_t* rk = rgb + ((size_t)yt->idx[k] * W + x_lo) * 3;
            float wk = yt->w[k];
            for (int t = 0; t < len; t++) row[t] += wk * (float)rk[t];
        }
        for (int j = 0; j < n; j++) {
            const AxisTaps* xt = &s->xtaps[j];
            if (xt->n == 0) {
                ob[j] = og[j] = orr[j] = 0.0f;
                continue;
            }
            float r = 0.0f, g = 0.0f, b = 0.0f;
            for (int k = 0; k < xt->n; k++) {
                const float* px = s->row + (size_t)xt->idx[k] * 3;
                r += xt->w[k] * px[0];
                g += xt->w[k] * px[1];
                b += xt->w[k] * px[2];
            }
            ob[j] = (b - tc->mean_bgr[0]) / tc->std_bgr[0];
            og[j] = (g - tc->mean_bgr[1]) / tc->std_bgr[1];
            orr[j] = (r - tc->mean_bgr[2]) / tc->std_bgr[2];
        }
        if (out_label) {
            const uint8_t* lrow = label + (size_t)s->ynear[i] * W;
            uint8_t* ol = out_label + (size_t)i * n;
            for (int j = 0; j < n; j++) ol[j] = s->xtaps[j].n ? lrow[s->xnear[j]] : tc->ignore;
        }
    }
}

// ---------------------------------------------------------------- public
void transform_config_from(TransformConfig* tc, const Config* cfg) {
    int n = 0;
    tc->warp = config_get_int(cfg, "data.warp_size");
    tc->crop = config_get_int(cfg, "data.crop_size");
    const double* sr = config_get_float_list(cfg, "data.scale_range", &n);
    tc->scale_min = (float)sr[0];
    tc->scale_max = (float)sr[1];
    tc->flip = config_get_bool(cfg, "data.flip");
    const double* m = config_get_float_list(cfg, "data.mean", &n);
    for (int c = 0; c < 3; c++) tc->mean_bgr[c] = (float)m[c];
    const double* sd = config_get_float_list(cfg, "data.std", &n);
    for (int c = 0; c < 3; c++) tc->std_bgr[c] = (float)sd[c];
    tc->ignore = (uint8_t)config_get_int(cfg, "data.ignore_label");
}

void transform_draw(const TransformConfig* tc, uint64_t seed, uint64_t epoch,
                    uint64_t sample_index, TransformDraw* d) {
    uint64_t st = rng_stream(RNG_AUGMENT, epoch, sample_index);
    float u = hd_rng_uniform(seed, st, 0);
    d->scale = (double)tc->scale_min + ((double)tc->scale_max - (double)tc->scale_min) * u;
    d->size = (int)lrint(tc->warp * d->scale);  // cv::resize: saturate_cast<int>, half to even
    if (d->size < 1) d->size = 1;
    int base = tc->warp > tc->crop ? tc->warp : tc->crop;
    int pad = base > d->size ? base - d->size : 0;
    d->pad_top = d->pad_left = pad / 2;
    d->padded = d->size + pad;
    uint32_t range = (uint32_t)(d->padded - tc->crop + 1);
    d->crop_y = (int)rng_uint_below(seed, st, 1, range);
    d->crop_x = (int)rng_uint_below(seed, st, 2, range);
    d->flip = tc->flip && hd_rng_uniform(seed, st, 3) < 0.5f;
}

// Row / column of the scaled image (before padding) behind crop row i /
// column j; outside [0, d->size) it is padding.
static int scaled_row(const TransformDraw* d, int i) { return d->crop_y + i - d->pad_top; }
static int scaled_col(const TransformConfig* tc, const TransformDraw* d, int j) {
    return d->crop_x + (d->flip ? tc->crop - 1 - j : j) - d->pad_left;
}

static Stage scale_stage(const TransformConfig* tc, const TransformDraw* d) {
    return stage_make(tc->warp, d->size, d->scale);
}

void transform_train(const TransformConfig* tc, const uint8_t* rgb, const uint8_t* label, int H,
                     int W, uint64_t seed, uint64_t epoch, uint64_t sample_index, float* out_img,
                     uint8_t* out_label, void* scratch, size_t scratch_bytes) {
    Scratch s = scratch_carve(tc, H, W, scratch, scratch_bytes);
    TransformDraw d;
    transform_draw(tc, seed, epoch, sample_index, &d);
    Stage wy = stage_make(H, tc->warp, (double)tc->warp / H);
    Stage wx = stage_make(W, tc->warp, (double)tc->warp / W);
    Stage sc = scale_stage(tc, &d);
    int n = tc->crop;
    for (int i = 0; i < n; i++) {
        int y = scaled_row(&d, i);
        s.ytaps[i].n = 0;
        if (y >= 0 && y < d.size) axis_taps(&wy, &sc, y, &s.ytaps[i], &s.ynear[i]);
    }
    for (int j = 0; j < n; j++) {
        int x = scaled_col(tc, &d, j);
        s.xtaps[j].n = 0;
        if (x >= 0 && x < d.size) axis_taps(&wx, &sc, x, &s.xtaps[j], &s.xnear[j]);
    }
    resample(tc, &s, n, rgb, label, W, out_img, out_label);
}

// The label path above reads label[wy.nearest(sc.nearest(row))]: the scale
// stage's nearest index is the warp image's pixel. -1: padding.
static int source_index(const Stage* sc, const TransformDraw* d, int scaled) {
    return scaled >= 0 && scaled < d->size ? stage_nearest(sc, scaled) : -1;
}

void transform_train_source(const TransformConfig* tc, const TransformDraw* d, int y, int x,
                            int* wy, int* wx) {
    Stage sc = scale_stage(tc, d);
    *wy = source_index(&sc, d, scaled_row(d, y));
    *wx = source_index(&sc, d, scaled_col(tc, d, x));
    if (*wy < 0 || *wx < 0) *wy = *wx = -1;
}

void transform_train_source_axes(const TransformConfig* tc, const TransformDraw* d, int* wy,
                                 int* wx) {
    Stage sc = scale_stage(tc, d);
    for (int i = 0; i < tc->crop; i++) {
        wy[i] = source_index(&sc, d, scaled_row(d, i));
        wx[i] = source_index(&sc, d, scaled_col(tc, d, i));
    }
}

void transform_test(const TransformConfig* tc, const uint8_t* rgb, const uint8_t* label, int H,
                    int W, float* out_img, uint8_t* out_label, void* scratch,
                    size_t scratch_bytes) {
    Scratch s = scratch_carve(tc, H, W, scratch, scratch_bytes);
    Stage wy = stage_make(H, tc->warp, (double)tc->warp / H);
    Stage wx = stage_make(W, tc->warp, (double)tc->warp / W);
    for (int i = 0; i < tc->warp; i++) axis_taps(&wy, NULL, i, &s.ytaps[i], &s.ynear[i]);
    for (int j = 0; j < tc->warp; j++) axis_taps(&wx, NULL, j, &s.xtaps[j], &s.xnear[j]);
    resample(tc, &s, tc->warp, rgb, label, W, out_img, label ? out_label : NULL);
}

void label_remap(uint8_t* labels, size_t n, const uint8_t table[256]) {
    for (size_t i = 0; i < n; i++) labels[i] = table[labels[i]];
}
