// predict_write on a hand-made 4x4 prediction (colours, overlay bytes,
// legend lines and swatches read back from the files) and predict_images on
// a tiny model (output size and colours, an unreadable file reported by name).
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "image_io.h"
#include "infer.h"
#include "predict.h"
#include "tiny_cagnet.h"
#include "transform.h"

#define NK 5  // classes

static char tmpdir[] = "/tmp/zsseg_predict_XXXXXX";

// Classes: ids 0 (neither split), 1, 2 (seen), 12 (unseen) and 4 (seen, absent from the hand map).
static char* names[NK] = {"bg", "plane", "bike", "dog", "boat"};
static int ids[NK] = {0, 1, 2, 12, 4};
static uint8_t seen[NK] = {0, 1, 1, 0, 1};
static uint8_t unseen[NK] = {0, 0, 0, 1, 0};

static DatasetClasses classes(void) {
    DatasetClasses cs;
    memset(&cs, 0, sizeof cs);
    cs.K = NK, cs.ids = ids, cs.names = names, cs.seen = seen, cs.unseen = unseen;
    return cs;
}

static uint8_t* read_png(const char* stem, const char* suffix, int* H, int* W) {
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/%s%s", tmpdir, stem, suffix);
    uint8_t* px = NULL;
    if (image_read_rgb(path, &px, H, W, err, sizeof err) != 0) {
        CHECK(0, "%s", err);
        return NULL;
    }
    return px;
}

static void test_colours(void) {
    uint8_t c[3];
    const int v[5] = {0, 1, 2, 12, 255};
    const uint8_t want[5][3] = {{0, 0, 0}, {128, 0, 0}, {0, 128, 0}, {64, 0, 128}, {224, 224, 192}};
    for (int i = 0; i < 5; i++) {
        predict_colour(v[i], c);
        CHECK(!memcmp(c, want[i], 3), "colour of %d: %d %d %d", v[i], c[0], c[1], c[2]);
    }
}

static void test_write(void) {
    DatasetClasses cs = classes();
    const uint8_t pred[16] = {1, 1, 2, 2,  //
                              1, 1, 2, 2,  //
                              3, 3, 3, 1,  //
                              3, 3, 3, 0};
    uint8_t rgb[48];
    for (int i = 0; i < 48; i++) rgb[i] = (uint8_t)(i * 16 + (i % 3) * 5);
    predict_write(tmpdir, "hand", rgb, 4, 4, pred, &cs);

    const uint8_t col[4][3] = {{0, 0, 0}, {128, 0, 0}, {0, 128, 0}, {64, 0, 128}};
    int H = 0, W = 0;
    uint8_t* seg = read_png("hand", "_seg.png", &H, &W);
    CHECK(seg && H == 4 && W == 4, "seg %dx%d", H, W);
    uint8_t* ov = read_png("hand", "_overlay.png", &H, &W);
    CHECK(ov && H == 4 && W == 4, "overlay %dx%d", H, W);
    if (seg && ov) {
        int bad_seg = 0, bad_ov = 0;
        for (int i = 0; i < 16; i++)
            for (int ch = 0; ch < 3; ch++) {
                bad_seg += seg[3 * i + ch] != col[pred[i]][ch];
                bad_ov += ov[3 * i + ch] != (rgb[3 * i + ch] + col[pred[i]][ch] + 1) / 2;
            }
        CHECK(bad_seg == 0 && bad_ov == 0, "seg: %d, overlay: %d bytes differ", bad_seg, bad_ov);
        // pixel 0: image (0, 21, 42), colour #800000; pixel 15: image (208, 229, 250), black
        CHECK(ov[0] == 64 && ov[1] == 11 && ov[2] == 21, "overlay pixel 0: %d %d %d", ov[0], ov[1],
              ov[2]);
        CHECK(ov[45] == 104 && ov[46] == 115 && ov[47] == 125, "overlay pixel 15: %d %d %d", ov[45],
              ov[46], ov[47]);
    }
    free(seg), free(ov);

    char path[512];
    snprintf(path, sizeof path, "%s/hand_legend.txt", tmpdir);
    char* text = file_read_all(path, NULL);
    const char* want =
        "# index\tid\tname\tcolour\tshare\tsplit\n"
        "0\t0\tbg\t#000000\t6.25%\tignored\n"
        "1\t1\tplane\t#800000\t31.25%\tseen\n"
        "2\t2\tbike\t#008000\t25.00%\tseen\n"
        "3\t12\tdog\t#400080\t37.50%\tunseen\n";
    CHECK(!strcmp(text, want), "legend:\n%s", text);
    free(text);

    uint8_t* strip = read_png("hand", "_legend.png", &H, &W);
    CHECK(strip && H == 4 * PREDICT_SWATCH && W == 4 * PREDICT_SWATCH, "legend strip %dx%d", H, W);
    if (strip)
        for (int k = 0; k < 4; k++) {
            const uint8_t* p = strip + ((size_t)(k * PREDICT_SWATCH + 5) * W + 7) * 3;
            CHECK(!memcmp(p, col[k], 3), "swatch %d: %d %d %d", k, p[0], p[1], p[2]);
        }
    free(strip);
}

// The tiny model on a 20x27 PNG; a missing file is reported by name and
// makes the call return 1 while the good image is still written.
static void test_images(void) {
    Config* cfg = tiny_config(1, 33);
    CagNet m;
    tiny_cagnet(&m, cfg, NK, unseen);
    DatasetClasses cs = classes();
    const int H = 20, W = 27;
    uint8_t* rgb = malloc((size_t)H * W * 3);
    for (int i = 0; i < H * W * 3; i++) rgb[i] = (uint8_t)(255.0f * hd_rng_uniform(8, 1, i));
    char good[512], missing[512], out[512];
    snprintf(good, sizeof good, "%s/scene.v1.png", tmpdir);
    snprintf(missing, sizeof missing, "%s/missing.jpg", tmpdir);
    snprintf(out, sizeof out, "%s/out/sub", tmpdir);
    image_write_png_rgb(good, rgb, H, W);

    char log[512];
    snprintf(log, sizeof log, "%s/stderr.txt", tmpdir);
    fflush(stderr);
    int keep = dup(2), fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 2);
    const char* paths[2] = {missing, good};
    int rc = predict_images(&m, cfg, &cs, paths, 2, out);
    fflush(stderr);
    dup2(keep, 2);
    close(fd), close(keep);
    CHECK(rc == 1, "predict_images returned %d with a missing file", rc);
    char* msg = file_read_all(log, NULL);
    CHECK(strstr(msg, missing) && strstr(msg, "1 of 2 images"), "stderr: %s", msg);
    free(msg);

    // the expected prediction: test transform, forward, logits upsampled to 20x27
    TransformConfig tc;
    transform_config_from(&tc, cfg);
    size_t sb = transform_scratch_bytes(&tc, W);
    void* scratch = malloc(sb);
    float* img = t_falloc((size_t)3 * 33 * 33);
    transform_test(&tc, rgb, NULL, H, W, img, NULL, scratch, sb);
    CagInfer a;
    cag_infer_init(&a, &m, 1, 33, 33);
    const float* logits = cag_infer_forward(&a, &m, img, 1);
    uint8_t* pred = malloc((size_t)H * W);
    cag_predict_labels_resized(logits, 1, m.K, a.Hf, a.Wf, H, W, pred);

    char stem[600];
    snprintf(stem, sizeof stem, "out/sub/scene.v1");
    int h = 0, w = 0;
    uint8_t* seg = read_png(stem, "_seg.png", &h, &w);
    CHECK(seg && h == H && w == W, "seg of scene.v1: %dx%d, want %dx%d", h, w, H, W);
    if (seg && h == H && w == W) {
        int bad = 0, classes_seen = 0, hist[NK] = {0};
        for (int i = 0; i < H * W; i++) {
            uint8_t c[3];
            predict_colour(ids[pred[i]], c);
            bad += memcmp(seg + 3 * i, c, 3) != 0;
            hist[pred[i]]++;
        }
        for (int k = 0; k < NK; k++) classes_seen += hist[k] > 0;
        CHECK(bad == 0, "seg of scene.v1: %d pixels differ from the expected prediction", bad);
        CHECK(classes_seen >= 2, "the tiny model predicts one class only: vacuous check");
    }
    free(seg), free(pred), free(img), free(scratch), free(rgb);
    cag_infer_free(&a);
    cagnet_free(&m);
    config_free(cfg);
}

int main(void) {
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_colours();
    test_write();
    test_images();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (!t_failures && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return t_report("test_predict");
}
