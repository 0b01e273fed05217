// Training/test transforms: hand-computed bilinear and nearest warps (OpenCV
// half-pixel semantics), BGR order and mean subtraction, the documented random
// draws, and the whole training transform against a literal double-precision
// re-implementation of the reference pipeline (warp, scale, centred pad, crop,
// flip as separate full-image steps), the label source map
// (transform_train_source). Also determinism, size checks, remap.
#include <string.h>
#include <time.h>

#include "config.h"
#include "rng.h"
#include "testing.h"
#include "transform.h"

static TransformConfig small_config(int warp, int crop, float smin, float smax) {
    TransformConfig tc = {warp,  crop, smin, smax, 1, {104.008f, 116.669f, 122.675f},
                          {2.0f, 4.0f, 0.5f}, 255};
    return tc;
}

static void* scratch_for(const TransformConfig* tc, int W, size_t* bytes) {
    *bytes = transform_scratch_bytes(tc, W);
    return malloc(*bytes);
}

// ---------------------------------------------------------------- references
// cv::resize, written from OpenCV's text: scale = 1 / inv_scale; linear
// src = (d + 0.5) * scale - 0.5, taps floor(src) and the next, weight of the
// next = frac; src < 0 -> tap 0, src >= in - 1 -> tap in - 1 alone; nearest
// min(floor(d * scale), in - 1); an unchanged size is a plain copy.
static void ref_resize(const double* src, int h, int w, int C, double* dst, int oh, int ow,
                       double inv_y, double inv_x, int nearest) {
    if (oh == h && ow == w) {
        memcpy(dst, src, sizeof(double) * h * w * C);
        return;
    }
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++) {
            int y0, y1, x0, x1;
            double fy, fx;
            if (nearest) {
                y0 = y1 = (int)fmin(floor(y * (1.0 / inv_y)), h - 1);
                x0 = x1 = (int)fmin(floor(x * (1.0 / inv_x)), w - 1);
                fy = fx = 0.0;
            } else {
                double sy = (y + 0.5) * (1.0 / inv_y) - 0.5, sx = (x + 0.5) * (1.0 / inv_x) - 0.5;
                y0 = (int)floor(sy), fy = sy - y0;
                x0 = (int)floor(sx), fx = sx - x0;
                if (y0 < 0) y0 = 0, fy = 0;
                if (y0 >= h - 1) y0 = h - 1, fy = 0;
                if (x0 < 0) x0 = 0, fx = 0;
                if (x0 >= w - 1) x0 = w - 1, fx = 0;
                y1 = y0 < h - 1 ? y0 + 1 : y0;
                x1 = x0 < w - 1 ? x0 + 1 : x0;
            }
            for (int c = 0; c < C; c++) {
#define S(yy, xx) src[((size_t)(yy) * w + (xx)) * C + c]
                dst[((size_t)y * ow + x) * C + c] =
                    (1 - fy) * ((1 - fx) * S(y0, x0) + fx * S(y0, x1)) +
                    fy * ((1 - fx) * S(y1, x0) + fx * S(y1, x1));
#undef S
            }
        }
}

// The reference training transform, step by step on whole images.
static void ref_train(const TransformConfig* tc, const uint8_t* rgb, const uint8_t* label, int H,
                      int W, const TransformDraw* d, double* out_img, uint8_t* out_label) {
    int warp = tc->warp, size = d->size, P = d->padded, n = tc->crop;
    double* img = malloc(sizeof(double) * H * W * 3);
    double* lab = malloc(sizeof(double) * H * W);
    for (int i = 0; i < H * W; i++) {
        for (int c = 0; c < 3; c++) img[i * 3 + c] = (rgb[i * 3 + 2 - c] - (double)tc->mean_bgr[c]) / tc->std_bgr[c];
        lab[i] = label[i];
    }
    double* wimg = malloc(sizeof(double) * warp * warp * 3);
    double* wlab = malloc(sizeof(double) * warp * warp);
    ref_resize(img, H, W, 3, wimg, warp, warp, (double)warp / H, (double)warp / W, 0);
    ref_resize(lab, H, W, 1, wlab, warp, warp, (double)warp / H, (double)warp / W, 1);
    double* simg = malloc(sizeof(double) * size * size * 3);
    double* slab = malloc(sizeof(double) * size * size);
    ref_resize(wimg, warp, warp, 3, simg, size, size, d->scale, d->scale, 0);
    ref_resize(wlab, warp, warp, 1, slab, size, size, d->scale, d->scale, 1);
    double* pimg = calloc((size_t)P * P * 3, sizeof(double));
    double* plab = malloc(sizeof(double) * P * P);
    for (int i = 0; i < P * P; i++) plab[i] = tc->ignore;
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            size_t p = (size_t)(y + d->pad_top) * P + x + d->pad_left;
            for (int c = 0; c < 3; c++) pimg[p * 3 + c] = simg[((size_t)y * size + x) * 3 + c];
            plab[p] = slab[(size_t)y * size + x];
        }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            int jj = d->flip ? n - 1 - j : j;
            size_t p = (size_t)(d->crop_y + i) * P + d->crop_x + jj;
            for (int c = 0; c < 3; c++) out_img[((size_t)c * n + i) * n + j] = pimg[p * 3 + c];
            out_label[(size_t)i * n + j] = (uint8_t)plab[p];
        }
    free(img), free(lab), free(wimg), free(wlab), free(simg), free(slab), free(pimg), free(plab);
}

static void fill_image(uint8_t* rgb, uint8_t* label, int H, int W, uint64_t seed) {
    for (int i = 0; i < H * W; i++) {
        for (int c = 0; c < 3; c++) rgb[i * 3 + c] = (uint8_t)(256.0f * hd_rng_uniform(seed, 7, i * 3 + c));
        label[i] = (uint8_t)(i % 23);
    }
}

// ---------------------------------------------------------------- tests
static void test_config(void) {
    Config* cfg = config_new();
    TransformConfig tc;
    transform_config_from(&tc, cfg);
    CHECK(tc.warp == 513 && tc.crop == 368 && tc.flip == 1 && tc.ignore == 255, "defaults");
    CHECK(tc.scale_min == 0.5f && tc.scale_max == 1.5f, "scale range");
    CHECK(tc.mean_bgr[0] == 104.008f && tc.mean_bgr[1] == 116.669f && tc.mean_bgr[2] == 122.675f,
          "mean in BGR order");
    CHECK(tc.std_bgr[0] == 1.0f && tc.std_bgr[1] == 1.0f && tc.std_bgr[2] == 1.0f, "std 1");
    config_free(cfg);
}

// 4x4 -> 8x8: positions (d + 0.5) / 2 - 0.5 clamped = 0, .25, .75, ... 2.75, 3;
// a linear ramp is reproduced at those positions. Channels R = 20y + 3x,
// G = 100, B = 5 + x; labels 10y + x, nearest rows/cols floor(d / 2).
static void test_warp_4x4_to_8x8(void) {
    TransformConfig tc = small_config(8, 8, 1, 1);
    uint8_t rgb[4 * 4 * 3], lab[16];
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++) {
            uint8_t* p = rgb + (y * 4 + x) * 3;
            p[0] = (uint8_t)(20 * y + 3 * x), p[1] = 100, p[2] = (uint8_t)(5 + x);
            lab[y * 4 + x] = (uint8_t)(10 * y + x);
        }
    const double pos[8] = {0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3};
    float out[3 * 64];
    uint8_t ol[64];
    size_t bytes;
    void* s = scratch_for(&tc, 4, &bytes);
    transform_test(&tc, rgb, lab, 4, 4, out, ol, s, bytes);
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 8; j++) {
            CHECK_CLOSE(out[0 * 64 + i * 8 + j], (5 + pos[j] - 104.008) / 2, 1e-4, 0,
                        "B = (5 + x - mean_B) / std_B");
            CHECK_CLOSE(out[1 * 64 + i * 8 + j], (100 - 116.669) / 4, 1e-4, 0, "G = (100 - mean_G) / 4");
            CHECK_CLOSE(out[2 * 64 + i * 8 + j], (20 * pos[i] + 3 * pos[j] - 122.675) / 0.5, 1e-4, 0,
                        "R = 20y + 3x - mean_R");
            CHECK(ol[i * 8 + j] == 10 * (i / 2) + j / 2, "nearest label (%d,%d) = %d", i, j, ol[i * 8 + j]);
        }
    free(s);
}

// 5x3 (H x W) -> 2x2: rows (d + .5) * 2.5 - .5 = 0.75, 3.25; cols
// (d + .5) * 1.5 - .5 = 0.25, 1.75. R = 20y + 3x gives 15.75, 20.25, 65.75,
// 70.25. Nearest rows floor(d * 2.5) = 0, 2, cols floor(d * 1.5) = 0, 1.
static void test_warp_5x3_to_2x2(void) {
    TransformConfig tc = small_config(2, 2, 1, 1);
    uint8_t rgb[5 * 3 * 3], lab[15];
    for (int y = 0; y < 5; y++)
        for (int x = 0; x < 3; x++) {
            uint8_t* p = rgb + (y * 3 + x) * 3;
            p[0] = (uint8_t)(20 * y + 3 * x), p[1] = 0, p[2] = 200;
            lab[y * 3 + x] = (uint8_t)(10 * y + x);
        }
    float out[12];
    uint8_t ol[4];
    size_t bytes;
    void* s = scratch_for(&tc, 3, &bytes);
    transform_test(&tc, rgb, lab, 5, 3, out, ol, s, bytes);
    const float want_r[4] = {15.75f, 20.25f, 65.75f, 70.25f};
    for (int k = 0; k < 4; k++) {
        CHECK_CLOSE(out[8 + k], (want_r[k] - 122.675) / 0.5, 1e-4, 0, "5x3->2x2 R");
        CHECK_CLOSE(out[4 + k], -116.669 / 4, 1e-4, 0, "5x3->2x2 G");
        CHECK_CLOSE(out[k], (200 - 104.008) / 2, 1e-4, 0, "5x3->2x2 B");
    }
    const uint8_t want_l[4] = {0, 1, 20, 21};
    CHECK(memcmp(ol, want_l, 4) == 0, "5x3->2x2 labels %d %d %d %d", ol[0], ol[1], ol[2], ol[3]);
    // NULL label leaves out_label alone
    memset(ol, 77, 4);
    transform_test(&tc, rgb, NULL, 5, 3, out, ol, s, bytes);
    CHECK(ol[0] == 77 && ol[3] == 77, "NULL label: out_label untouched");
    free(s);
}

// Draws follow the documented formulas on stream rng_stream(RNG_AUGMENT, epoch, index).
static void test_draws(void) {
    TransformConfig tc = small_config(513, 368, 0.5f, 1.5f);
    uint64_t seed = 1234, epoch = 3, idx = 77;
    TransformDraw d;
    transform_draw(&tc, seed, epoch, idx, &d);
    uint64_t st = rng_stream(RNG_AUGMENT, epoch, idx);
    double s = 0.5 + 1.0 * (double)hd_rng_uniform(seed, st, 0);
    int size = (int)lrint(513 * s);
    int pad = size < 513 ? 513 - size : 0;
    printf("draw (seed %llu, epoch %llu, index %llu): scale %.6f size %d pad %d padded %d crop (%d, %d) flip %d\n",
           (unsigned long long)seed, (unsigned long long)epoch, (unsigned long long)idx, d.scale,
           d.size, d.pad_top, d.padded, d.crop_y, d.crop_x, d.flip);
    CHECK(d.scale == s && d.size == size, "draw 0: scale");
    CHECK(d.pad_top == pad / 2 && d.pad_left == pad / 2 && d.padded == size + pad, "centred pad");
    CHECK(d.crop_y == (int)rng_uint_below(seed, st, 1, (uint32_t)(d.padded - 368 + 1)), "draw 1: crop y");
    CHECK(d.crop_x == (int)rng_uint_below(seed, st, 2, (uint32_t)(d.padded - 368 + 1)), "draw 2: crop x");
    CHECK(d.flip == (hd_rng_uniform(seed, st, 3) < 0.5f), "draw 3: flip");
    // the values themselves, so a change of the RNG or the draw numbering shows
    CHECK(fabs(d.scale - 1.492496) < 1e-6 && d.size == 766 && d.pad_top == 0 && d.padded == 766 &&
              d.crop_y == 372 && d.crop_x == 398 && d.flip == 0,
          "known draws of (1234, 3, 77)");
    // flip off never flips; the draws are spread over their ranges
    tc.flip = 0;
    int flips = 0, lo = 0, hi = 0;
    for (uint64_t i = 0; i < 400; i++) {
        transform_draw(&tc, seed, epoch, i, &d);
        flips += d.flip;
        lo += d.scale < 0.6, hi += d.scale > 1.4;
    }
    CHECK(flips == 0, "flip off");
    CHECK(lo > 20 && hi > 20, "scale draws reach both ends (%d low, %d high of 400)", lo, hi);
}

// The whole training transform vs the step-by-step reference, over samples
// that cover padding (s < 1), no padding, flips and a non-square source.
static void test_train_vs_reference(void) {
    const int H = 9, W = 13;
    uint8_t rgb[9 * 13 * 3], lab[9 * 13];
    fill_image(rgb, lab, H, W, 5);
    TransformConfig tc = small_config(16, 12, 0.5f, 1.5f);
    size_t bytes;
    void* s = scratch_for(&tc, W, &bytes);
    int n = tc.crop, padded_seen = 0, flips_seen = 0, big_seen = 0;
    float* out = malloc(sizeof(float) * 3 * n * n);
    double* want = malloc(sizeof(double) * 3 * n * n);
    uint8_t *ol = malloc((size_t)n * n), *wl = malloc((size_t)n * n);
    for (uint64_t idx = 0; idx < 40; idx++) {
        TransformDraw d;
        transform_draw(&tc, 9, 1, idx, &d);
        padded_seen += d.size < 16, flips_seen += d.flip, big_seen += d.size > 16;
        transform_train(&tc, rgb, lab, H, W, 9, 1, idx, out, ol, s, bytes);
        ref_train(&tc, rgb, lab, H, W, &d, want, wl);
        int bad = 0;
        for (int k = 0; k < 3 * n * n; k++) bad += !t_close(out[k], want[k], 1e-3, 0);
        CHECK(bad == 0, "sample %d (size %d flip %d): %d image values differ", (int)idx, d.size, d.flip, bad);
        CHECK(memcmp(ol, wl, (size_t)n * n) == 0, "sample %d: labels differ", (int)idx);
    }
    CHECK(padded_seen > 3 && flips_seen > 3 && big_seen > 3, "coverage: %d padded, %d flipped, %d enlarged",
          padded_seen, flips_seen, big_seen);
    // a factor that rounds back to the warp size is a plain copy in cv::resize
    TransformConfig same = small_config(16, 12, 1.0005f, 1.0005f);
    TransformDraw d;
    transform_draw(&same, 9, 1, 0, &d);
    transform_train(&same, rgb, lab, H, W, 9, 1, 0, out, ol, s, bytes);
    ref_train(&same, rgb, lab, H, W, &d, want, wl);
    int bad = 0;
    for (int k = 0; k < 3 * n * n; k++) bad += !t_close(out[k], want[k], 1e-3, 0);
    CHECK(bad == 0 && d.size == 16, "s = 1.0005 (size %d) is a copy: %d values differ", d.size, bad);
    free(out), free(want), free(ol), free(wl), free(s);
}

// s = 0.5 on warp 16: the scaled image is 8x8, padded to 16 with offset 4, so
// rows/cols 4..11 of the padded image hold pixels and the rest is 0 / ignore.
static void test_padding(void) {
    const int H = 6, W = 7;
    uint8_t rgb[6 * 7 * 3], lab[6 * 7];
    fill_image(rgb, lab, H, W, 3);
    for (int i = 0; i < H * W; i++) lab[i] = 1;
    TransformConfig tc = small_config(16, 12, 0.5f, 0.5f);
    size_t bytes;
    void* s = scratch_for(&tc, W, &bytes);
    float out[3 * 144];
    uint8_t ol[144];
    for (uint64_t idx = 0; idx < 6; idx++) {
        TransformDraw d;
        transform_draw(&tc, 2, 0, idx, &d);
        CHECK(d.size == 8 && d.pad_top == 4 && d.padded == 16, "s = 0.5 geometry");
        transform_train(&tc, rgb, lab, H, W, 2, 0, idx, out, ol, s, bytes);
        int bad = 0;
        for (int i = 0; i < 12; i++)
            for (int j = 0; j < 12; j++) {
                int py = d.crop_y + i, px = d.crop_x + (d.flip ? 11 - j : j);
                int inside = py >= 4 && py < 12 && px >= 4 && px < 12;
                bad += ol[i * 12 + j] != (inside ? 1 : 255);
                if (!inside)
                    for (int c = 0; c < 3; c++) bad += out[c * 144 + i * 12 + j] != 0.0f;
            }
        CHECK(bad == 0, "sample %d (crop %d,%d flip %d): %d padded pixels wrong", (int)idx, d.crop_y,
              d.crop_x, d.flip, bad);
    }
    free(s);
}

static void test_determinism(void) {
    const int H = 30, W = 41;
    uint8_t *rgb = malloc((size_t)H * W * 3), *lab = malloc((size_t)H * W);
    fill_image(rgb, lab, H, W, 11);
    TransformConfig tc = small_config(33, 24, 0.5f, 1.5f);
    size_t bytes;
    void* s = scratch_for(&tc, W, &bytes);
    size_t n = 24 * 24;
    float *a = malloc(3 * n * sizeof(float)), *b = malloc(3 * n * sizeof(float));
    uint8_t *la = malloc(n), *lb = malloc(n);
    transform_train(&tc, rgb, lab, H, W, 42, 2, 1000, a, la, s, bytes);
    memset(s, 0xab, bytes);  // nothing may leak from one call to the next through the scratch
    transform_train(&tc, rgb, lab, H, W, 42, 2, 1000, b, lb, s, bytes);
    CHECK(memcmp(a, b, 3 * n * sizeof(float)) == 0 && memcmp(la, lb, n) == 0, "same key, same bytes");
    transform_train(&tc, rgb, lab, H, W, 42, 2, 1001, b, lb, s, bytes);
    CHECK(memcmp(a, b, 3 * n * sizeof(float)) != 0, "another sample index, another augmentation");
    transform_train(&tc, rgb, lab, H, W, 42, 3, 1000, b, lb, s, bytes);
    CHECK(memcmp(a, b, 3 * n * sizeof(float)) != 0, "another epoch, another augmentation");
    free(rgb), free(lab), free(s), free(a), free(b), free(la), free(lb);
}

// transform_train's label at every crop pixel is the warp-size label at
// transform_train_source's pixel, or ignore where that says padding: on a
// warp x warp input (all values distinct, the warp is the identity) and on a
// non-square one through transform_test's nearest warp; the axis form
// agrees. Covers padding (scaled side < crop, and < warp), enlargement,
// flips, crop > warp.
static void check_source(const TransformConfig* tc, const uint8_t* lab, int H, int W,
                         const uint8_t* warped, uint64_t seed, int* cover) {
    int n = tc->crop, w = tc->warp;
    size_t bytes;
    void* s = scratch_for(tc, W, &bytes);
    uint8_t* rgb = calloc((size_t)H * W * 3, 1);
    float* out = malloc(sizeof(float) * 3 * n * n);
    uint8_t* ol = malloc((size_t)n * n);
    int *ay = malloc(sizeof(int) * n), *ax = malloc(sizeof(int) * n);
    for (uint64_t idx = 0; idx < 60; idx++) {
        TransformDraw d;
        transform_draw(tc, seed, 2, idx, &d);
        transform_train(tc, rgb, lab, H, W, seed, 2, idx, out, ol, s, bytes);
        transform_train_source_axes(tc, &d, ay, ax);
        int bad = 0, pads = 0;
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++) {
                int wy, wx;
                transform_train_source(tc, &d, y, x, &wy, &wx);
                int in = wy >= 0 && wy < w && wx >= 0 && wx < w;
                pads += wy < 0;
                bad += !in && !(wy == -1 && wx == -1);
                bad += ay[y] >= 0 && ax[x] >= 0 ? wy != ay[y] || wx != ax[x] : in;
                bad += ol[y * n + x] != (in ? warped[wy * w + wx] : tc->ignore);
            }
        CHECK(bad == 0, "sample %d (size %d crop %d,%d flip %d): %d labels off the source map",
              (int)idx, d.size, d.crop_y, d.crop_x, d.flip, bad);
        cover[0] += d.size < n, cover[1] += d.size > w, cover[2] += d.flip, cover[3] += pads > 0;
    }
    free(s), free(rgb), free(out), free(ol), free(ay), free(ax);
}

static void test_train_source(void) {
    const TransformConfig cfgs[3] = {small_config(15, 12, 0.5f, 1.5f),
                                     small_config(10, 14, 0.6f, 1.8f),
                                     small_config(15, 9, 0.3f, 2.5f)};
    for (int c = 0; c < 3; c++) {
        const TransformConfig* tc = &cfgs[c];
        int w = tc->warp, cover[4] = {0};
        uint8_t* lab = malloc((size_t)w * w);
        for (int q = 0; q < w * w; q++) lab[q] = (uint8_t)q;  // distinct, never 255
        for (uint64_t seed = 1; seed <= 3; seed++) check_source(tc, lab, w, w, lab, seed, cover);
        // another input size: the warp image is transform_test's nearest warp
        const int H = 23, W = 9;
        uint8_t *rgb = calloc((size_t)H * W * 3, 1), *big = malloc((size_t)H * W);
        uint8_t* warped = malloc((size_t)w * w);
        float* img = malloc(sizeof(float) * 3 * w * w);
        for (int q = 0; q < H * W; q++) big[q] = (uint8_t)(q % 251);
        size_t bytes;
        void* s = scratch_for(tc, W, &bytes);
        transform_test(tc, rgb, big, H, W, img, warped, s, bytes);
        check_source(tc, big, H, W, warped, 7, cover);
        printf("train source (warp %d crop %d): %d smaller than the crop, %d enlarged, %d flipped, "
               "%d with padding, of 240\n", w, tc->crop, cover[0], cover[1], cover[2], cover[3]);
        CHECK(cover[0] > 5 && cover[1] > 5 && cover[2] > 5 && cover[3] > 5,
              "coverage (warp %d crop %d): %d small, %d enlarged, %d flipped, %d padded", w,
              tc->crop, cover[0], cover[1], cover[2], cover[3]);
        free(lab), free(rgb), free(big), free(warped), free(img), free(s);
    }
}

static TransformConfig chk_tc;
static uint8_t chk_px[64 * 3], chk_lab[64];
static float chk_out[3 * 64];
static uint8_t chk_ol[64];
static void train_small_scratch(void) {
    size_t need = transform_scratch_bytes(&chk_tc, 8);
    void* s = malloc(need);
    transform_train(&chk_tc, chk_px, chk_lab, 8, 8, 1, 0, 0, chk_out, chk_ol, s, need - 1);
}
static void test_zero_width(void) {
    size_t need = transform_scratch_bytes(&chk_tc, 8);
    void* s = malloc(need);
    transform_test(&chk_tc, chk_px, chk_lab, 8, 0, chk_out, chk_ol, s, need);
}
static void train_wider_than_scratch(void) {
    size_t need = transform_scratch_bytes(&chk_tc, 4);
    void* s = malloc(need);
    transform_train(&chk_tc, chk_px, chk_lab, 4, 16, 1, 0, 0, chk_out, chk_ol, s, need);
}

static void test_size_checks(void) {
    chk_tc = small_config(8, 8, 0.5f, 1.5f);
    CHECK(transform_scratch_bytes(&chk_tc, 100) > transform_scratch_bytes(&chk_tc, 10),
          "scratch grows with the width");
    CHECK(t_exits_with_error(train_small_scratch), "scratch one byte short is refused");
    CHECK(t_exits_with_error(train_wider_than_scratch), "image wider than the scratch is refused");
    CHECK(t_exits_with_error(test_zero_width), "zero-width image is refused");
}

static void test_label_remap(void) {
    uint8_t table[256];
    memset(table, 255, sizeof table);
    table[0] = 0, table[5] = 1, table[181] = 2;  // 7 is unseen: stays 255
    uint8_t l[6] = {0, 5, 181, 7, 255, 5};
    const uint8_t want[6] = {0, 1, 2, 255, 255, 1};
    label_remap(l, 6, table);
    CHECK(memcmp(l, want, 6) == 0, "label_remap");
}

// Informational: one 640x480 COCO-sized sample to a 368 crop, one thread.
static void bench_train(void) {
    const int H = 480, W = 640;
    uint8_t *rgb = malloc((size_t)H * W * 3), *lab = malloc((size_t)H * W);
    fill_image(rgb, lab, H, W, 1);
    TransformConfig tc = small_config(513, 368, 0.5f, 1.5f);
    size_t bytes;
    void* s = scratch_for(&tc, W, &bytes);
    float* out = malloc(sizeof(float) * 3 * 368 * 368);
    uint8_t* ol = malloc(368 * 368);
    const int reps = 40;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int r = 0; r < reps; r++) transform_train(&tc, rgb, lab, H, W, 1, 0, (uint64_t)r, out, ol, s, bytes);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = ((t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) * 1e-6) / reps;
    printf("transform_train 640x480 -> 368x368: %.2f ms per image (1 thread)\n", ms);
    free(rgb), free(lab), free(s), free(out), free(ol);
}

int main(void) {
    test_config();
    test_warp_4x4_to_8x8();
    test_warp_5x3_to_2x2();
    test_draws();
    test_train_vs_reference();
    test_padding();
    test_train_source();
    test_determinism();
    test_size_checks();
    test_label_remap();
    bench_train();
    return t_report("test_transform");
}
