// Colour segmentations of image files; see predict.h.
#include "predict.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "image_io.h"
#include "infer.h"
#include "transform.h"

void predict_colour(int v, uint8_t rgb[3]) {
    int r = 0, g = 0, b = 0;
    for (int j = 0; j < 8; j++, v >>= 3) {
        r |= (v & 1) << (7 - j);
        g |= ((v >> 1) & 1) << (7 - j);
        b |= ((v >> 2) & 1) << (7 - j);
    }
    rgb[0] = (uint8_t)r, rgb[1] = (uint8_t)g, rgb[2] = (uint8_t)b;
}

static const char* split_name(const DatasetClasses* cs, int c) {
    return cs->unseen[c] ? "unseen" : cs->seen[c] ? "seen" : "ignored";
}

static void write_legend(const char* base, const DatasetClasses* cs, const uint8_t (*colour)[3],
                         const size_t* count, size_t total) {
    char* text = NULL;
    size_t len = 0;
    FILE* fp = open_memstream(&text, &len);
    if (!fp) ZS_FAIL("the process is out of memory", "cannot buffer the legend of %s", base);
    fprintf(fp, "# index\tid\tname\tcolour\tshare\tsplit\n");
    int n = 0;
    for (int c = 0; c < cs->K; c++) {
        if (!count[c]) continue;
        fprintf(fp, "%d\t%d\t%s\t#%02x%02x%02x\t%.2f%%\t%s\n", c, cs->ids[c], cs->names[c],
                colour[c][0], colour[c][1], colour[c][2], 100.0 * (double)count[c] / (double)total,
                split_name(cs, c));
        n++;
    }
    fclose(fp);
    char path[4200];
    snprintf(path, sizeof path, "%s_legend.txt", base);
    file_write_atomic(path, text, len);
    free(text);

    const int sh = PREDICT_SWATCH, sw = 4 * PREDICT_SWATCH;
    uint8_t* strip = mallocCheck((size_t)n * sh * sw * 3);
    for (int c = 0, row = 0; c < cs->K; c++) {
        if (!count[c]) continue;
        for (int p = 0; p < sh * sw; p++)
            memcpy(strip + ((size_t)row * sh * sw + p) * 3, colour[c], 3);
        row++;
    }
    snprintf(path, sizeof path, "%s_legend.png", base);
    image_write_png_rgb(path, strip, n * sh, sw);
    free(strip);
}

void predict_write(const char* out_dir, const char* stem, const uint8_t* rgb, int H, int W,
                   const uint8_t* pred, const DatasetClasses* cs) {
    const size_t n = (size_t)H * W;
    uint8_t(*colour)[3] = mallocCheck((size_t)cs->K * sizeof *colour);
    size_t* count = callocCheck((size_t)cs->K, sizeof *count);
    for (int c = 0; c < cs->K; c++) predict_colour(cs->ids[c], colour[c]);
    uint8_t* seg = mallocCheck(n * 3);
    uint8_t* overlay = mallocCheck(n * 3);
    for (size_t i = 0; i < n; i++) {
        if (pred[i] >= cs->K)
            ZS_FAIL("pass training indices of the class list",
                    "predict_write %s: pixel %zu has class %d of %d", stem, i, pred[i], cs->K);
        count[pred[i]]++;
        for (int ch = 0; ch < 3; ch++) {
            seg[3 * i + ch] = colour[pred[i]][ch];
            overlay[3 * i + ch] = (uint8_t)((rgb[3 * i + ch] + colour[pred[i]][ch] + 1) / 2);
        }
    }
    char base[4096], path[4200];
    if (snprintf(base, sizeof base, "%s/%s", out_dir, stem) >= (int)sizeof base)
        ZS_FAIL("use a shorter output directory or image name", "output path too long: %s/%s",
                out_dir, stem);
    snprintf(path, sizeof path, "%s_seg.png", base);
    image_write_png_rgb(path, seg, H, W);
    snprintf(path, sizeof path, "%s_overlay.png", base);
    image_write_png_rgb(path, overlay, H, W);
    write_legend(base, cs, (const uint8_t(*)[3])colour, count, n);
    free(seg), free(overlay), free(colour), free(count);
}

// File name without directory and extension (into buf).
static void file_stem(const char* path, char* buf, size_t cap) {
    const char* slash = strrchr(path, '/');
    snprintf(buf, cap, "%s", slash ? slash + 1 : path);
    char* dot = strrchr(buf, '.');
    if (dot && dot != buf) *dot = '\0';
}

int predict_images(const CagNet* m, const Config* cfg, const DatasetClasses* cs,
                   const char* const* paths, int n, const char* out_dir) {
    if (cs->K != m->K)
        ZS_FAIL("predict with the class list the model was built for (data.classes)",
                "the model has %d classes, the class list %d", m->K, cs->K);
    dir_create(out_dir);
    TransformConfig tc;
    transform_config_from(&tc, cfg);
    CagInfer inf;
    cag_infer_init(&inf, m, 1, tc.warp, tc.warp);
    float* img = mallocCheck((size_t)3 * tc.warp * tc.warp * sizeof(float));
    int failed = 0;
    for (int i = 0; i < n; i++) {
        uint8_t* rgb = NULL;
        int H = 0, W = 0;
        char err[1024];
        if (image_read_rgb(paths[i], &rgb, &H, &W, err, sizeof err) != 0) {
            log_error("predict: skipping an image: %s", err);
            failed++;
            continue;
        }
        size_t sb = transform_scratch_bytes(&tc, W);
        void* scratch = mallocCheck(sb);
        transform_test(&tc, rgb, NULL, H, W, img, NULL, scratch, sb);
        free(scratch);
        const float* logits = cag_infer_forward(&inf, m, img, 1);
        uint8_t* pred = mallocCheck((size_t)H * W);
        cag_predict_labels_resized(logits, 1, m->K, inf.Hf, inf.Wf, H, W, pred);
        char stem[1024];
        file_stem(paths[i], stem, sizeof stem);
        predict_write(out_dir, stem, rgb, H, W, pred, cs);
        log_info("predict: %s (%dx%d) -> %s/%s_seg.png", paths[i], W, H, out_dir, stem);
        free(pred), free(rgb);
    }
    if (failed) log_error("predict: %d of %d images could not be read (listed above)", failed, n);
    free(img);
    cag_infer_free(&inf);
    return failed ? 1 : 0;
}
