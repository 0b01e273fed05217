// Image and label files: JPEG and PNG round trips, palette labels read as
// indices, and every bad input (16-bit or RGB label, truncated JPEG and PNG,
// missing file, text named .jpg) refused with a message naming the file.
#include <png.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image_io.h"
#include "testing.h"

static char dir[64];

static const char* tmp_path(const char* name) {
    static char buf[8][256];
    static int k = 0;
    char* p = buf[k++ & 7];
    snprintf(p, 256, "%s/%s", dir, name);
    return p;
}

// A smooth image with mild texture: what photos look like to a JPEG coder.
static void make_rgb(uint8_t* rgb, int H, int W) {
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t* p = rgb + ((size_t)y * W + x) * 3;
            p[0] = (uint8_t)(40 + 2 * x + (y % 3));
            p[1] = (uint8_t)(200 - 3 * y);
            p[2] = (uint8_t)(90 + x + y);
        }
}

static void check_err_names(int rc, const char* err, const char* path, const char* also, const char* what) {
    CHECK(rc != 0, "%s: must fail", what);
    CHECK(strstr(err, path) != NULL, "%s: message names the file: '%s'", what, err);
    if (also) CHECK(strstr(err, also) != NULL, "%s: message says '%s': '%s'", what, also, err);
}

static void truncate_half(const char* path) {
    FILE* fp = fopen(path, "rb");
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fclose(fp);
    CHECK(truncate(path, n / 2) == 0, "truncate %s", path);
}

static void test_jpeg_round_trip(void) {
    const int H = 48, W = 64;
    uint8_t* rgb = malloc((size_t)H * W * 3);
    make_rgb(rgb, H, W);
    const char* path = tmp_path("a.jpg");
    image_write_jpeg(path, rgb, H, W, 100);
    uint8_t* got = NULL;
    int h = 0, w = 0;
    char err[512] = "";
    CHECK(image_read_rgb(path, &got, &h, &w, err, sizeof err) == 0, "read jpeg: %s", err);
    CHECK(h == H && w == W, "jpeg size %dx%d", w, h);
    if (got && h == H && w == W) {
        double mae = 0;
        for (int i = 0; i < H * W * 3; i++) mae += abs((int)got[i] - (int)rgb[i]);
        mae /= H * W * 3;
        printf("jpeg q100 round trip: mean abs error %.3f\n", mae);
        CHECK(mae < 2.0, "jpeg q100 mean abs error %.3f < 2", mae);
    }
    free(got);
    CHECK(access(tmp_path("a.jpg.tmp"), F_OK) != 0, "no temporary left behind");

    // truncated to half: premature end of data is an error, not a grey image
    truncate_half(path);
    got = NULL;
    int rc = image_read_rgb(path, &got, &h, &w, err, sizeof err);
    check_err_names(rc, err, path, "truncated", "truncated jpeg");
    CHECK(got == NULL, "no pixels on failure");
    free(rgb);
}

static void test_png_round_trips(void) {
    const int H = 7, W = 11;
    uint8_t rgb[7 * 11 * 3], lab[7 * 11];
    for (int i = 0; i < H * W * 3; i++) rgb[i] = (uint8_t)(i * 37 + 5);
    for (int i = 0; i < H * W; i++) lab[i] = (uint8_t)(i * 13 % 256);
    lab[3] = 255, lab[4] = 0;
    char err[512] = "";
    uint8_t* got = NULL;
    int h = 0, w = 0;

    label_write_png(tmp_path("l.png"), lab, H, W);
    CHECK(label_read_png(tmp_path("l.png"), &got, &h, &w, err, sizeof err) == 0, "read label: %s", err);
    CHECK(h == H && w == W && got && memcmp(got, lab, sizeof lab) == 0, "label png exact round trip");
    free(got);

    image_write_png_rgb(tmp_path("c.png"), rgb, H, W);
    got = NULL;
    CHECK(image_read_rgb(tmp_path("c.png"), &got, &h, &w, err, sizeof err) == 0, "read png: %s", err);
    CHECK(h == H && w == W && got && memcmp(got, rgb, sizeof rgb) == 0, "rgb png exact round trip");
    free(got);

    // a PNG named .jpg is recognised by its signature
    rename(tmp_path("c.png"), tmp_path("c_really_png.jpg"));
    got = NULL;
    CHECK(image_read_rgb(tmp_path("c_really_png.jpg"), &got, &h, &w, err, sizeof err) == 0 && got &&
              memcmp(got, rgb, sizeof rgb) == 0,
          "png with a .jpg name: %s", err);
    free(got);

    // an RGB PNG is not a label map
    image_write_png_rgb(tmp_path("rgb_label.png"), rgb, H, W);
    got = NULL;
    int rc = label_read_png(tmp_path("rgb_label.png"), &got, &h, &w, err, sizeof err);
    check_err_names(rc, err, tmp_path("rgb_label.png"), "RGB", "rgb label");

    // truncated label PNG
    label_write_png(tmp_path("t.png"), lab, H, W);
    truncate_half(tmp_path("t.png"));
    rc = label_read_png(tmp_path("t.png"), &got, &h, &w, err, sizeof err);
    check_err_names(rc, err, tmp_path("t.png"), NULL, "truncated label png");
    CHECK(got == NULL, "no labels on failure");
}

// Palette PNG written with libpng's classic API: the reader must return the
// indices, whatever colours the palette holds, at 8 and at 2 bits per pixel.
static void write_palette_png(const char* path, const uint8_t* idx, int H, int W, int depth) {
    FILE* fp = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)W, (png_uint_32)H, depth, PNG_COLOR_TYPE_PALETTE,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_color pal[4] = {{0, 0, 0}, {128, 0, 0}, {0, 128, 0}, {224, 224, 192}};
    png_set_PLTE(png, info, pal, 4);
    png_write_info(png, info);
    if (depth < 8) png_set_packing(png);
    for (int y = 0; y < H; y++) png_write_row(png, (png_const_bytep)(idx + (size_t)y * W));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(fp);
}

static void test_palette_label(void) {
    const int H = 5, W = 9;
    uint8_t idx[5 * 9];
    for (int i = 0; i < H * W; i++) idx[i] = (uint8_t)((i * 7 + i / 9) % 4);
    char err[512] = "";
    for (int depth = 8; depth >= 2; depth -= 6) {
        write_palette_png(tmp_path("p.png"), idx, H, W, depth);
        uint8_t* got = NULL;
        int h = 0, w = 0;
        CHECK(label_read_png(tmp_path("p.png"), &got, &h, &w, err, sizeof err) == 0, "palette read: %s", err);
        CHECK(h == H && w == W && got && memcmp(got, idx, sizeof idx) == 0,
              "%d-bit palette label read as indices", depth);
        free(got);
    }
}

static void test_bad_labels(void) {
    char err[512] = "";
    uint8_t* got = NULL;
    int h = 0, w = 0;
    // 16-bit greyscale through the simplified API's linear 16-bit format
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = 4, img.height = 3, img.format = PNG_FORMAT_LINEAR_Y;
    uint16_t v[12];
    for (int i = 0; i < 12; i++) v[i] = (uint16_t)(i * 1000);
    CHECK(png_image_write_to_file(&img, tmp_path("d16.png"), 0, v, 0, NULL), "write 16-bit png");
    int rc = label_read_png(tmp_path("d16.png"), &got, &h, &w, err, sizeof err);
    check_err_names(rc, err, tmp_path("d16.png"), "16-bit", "16-bit label");
    CHECK(strstr(err, "8-bit") != NULL, "16-bit message says how to fix: '%s'", err);
    printf("16-bit label message: %s\n", err);

    rc = label_read_png(tmp_path("missing.png"), &got, &h, &w, err, sizeof err);
    check_err_names(rc, err, tmp_path("missing.png"), "No such file", "missing label");
}

static void test_bad_images(void) {
    char err[512] = "";
    uint8_t* got = NULL;
    int h = 0, w = 0;
    int rc = image_read_rgb(tmp_path("missing.jpg"), &got, &h, &w, err, sizeof err);
    check_err_names(rc, err, tmp_path("missing.jpg"), "No such file", "missing jpeg");

    FILE* fp = fopen(tmp_path("text.jpg"), "w");
    fputs("this is not an image\n", fp);
    fclose(fp);
    rc = image_read_rgb(tmp_path("text.jpg"), &got, &h, &w, err, sizeof err);
    check_err_names(rc, err, tmp_path("text.jpg"), NULL, "text named .jpg");
    CHECK(got == NULL, "no pixels for text");

    fp = fopen(tmp_path("empty.jpg"), "w");
    fclose(fp);
    rc = image_read_rgb(tmp_path("empty.jpg"), &got, &h, &w, err, sizeof err);
    check_err_names(rc, err, tmp_path("empty.jpg"), NULL, "empty file");
}

static void write_into_missing_dir(void) {
    uint8_t px[3] = {1, 2, 3};
    image_write_jpeg("/nonexistent-zsseg-dir/x.jpg", px, 1, 1, 90);
}
static void write_label_into_missing_dir(void) {
    uint8_t px[1] = {1};
    label_write_png("/nonexistent-zsseg-dir/x.png", px, 1, 1);
}

static void test_writer_failures(void) {
    CHECK(t_exits_with_error(write_into_missing_dir), "jpeg writer stops on an unusable path");
    CHECK(t_exits_with_error(write_label_into_missing_dir), "png writer stops on an unusable path");
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/zsseg-imgio-XXXXXX");
    if (!mkdtemp(dir)) return 1;
    test_jpeg_round_trip();
    test_png_round_trips();
    test_palette_label();
    test_bad_labels();
    test_bad_images();
    test_writer_failures();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return t_report("test_image_io");
}
