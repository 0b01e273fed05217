#include "image_io.h"

#include <png.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <turbojpeg.h>

#include "common.h"

// Larger claims in a header are treated as corruption rather than allocated.
#define MAX_PIXELS (1ull << 28)

static int fail(char* err, size_t errlen, const char* fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char* err, size_t errlen, const char* fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return 1;
}

// Whole file into memory; nonzero with a message on any failure.
static int slurp(const char* path, uint8_t** buf, size_t* len, char* err, size_t errlen) {
    char* bad = file_readable_problem(path, "image");
    if (bad) {
        fail(err, errlen, "%s", bad);
        free(bad);
        return 1;
    }
    FILE* fp = fopen(path, "rb");
    if (!fp) return fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    long n = -1;
    if (fseek(fp, 0, SEEK_END) == 0) n = ftell(fp);
    if (n < 0 || fseek(fp, 0, SEEK_SET) != 0) {
        fclose(fp);
        return fail(err, errlen, "%s: cannot size the file (not a regular file?)", path);
    }
    if (n == 0) {
        fclose(fp);
        return fail(err, errlen, "%s: empty file", path);
    }
    *buf = (uint8_t*)malloc((size_t)n);
    if (!*buf) {
        fclose(fp);
        return fail(err, errlen, "%s: out of memory reading %ld bytes", path, n);
    }
    size_t got = fread(*buf, 1, (size_t)n, fp);
    fclose(fp);
    if (got != (size_t)n) {
        free(*buf);
        *buf = NULL;
        return fail(err, errlen, "%s: read error after %zu of %ld bytes", path, got, n);
    }
    *len = (size_t)n;
    return 0;
}

static int is_png(const uint8_t* buf, size_t len) {
    return len >= 8 && png_sig_cmp((png_const_bytep)buf, 0, 8) == 0;
}

static int check_size(const char* path, int H, int W, char* err, size_t errlen) {
    if (H < 1 || W < 1 || (unsigned long long)H * (unsigned long long)W > MAX_PIXELS)
        return fail(err, errlen, "%s: implausible image size %dx%d (corrupt header?)", path, W, H);
    return 0;
}

// ---------------------------------------------------------------- JPEG
// TurboJPEG reports a truncated or damaged stream ("Premature end of JPEG
// file") as a warning (TJERR_WARNING) after filling the rest with grey; any
// nonzero return, warning included, is a failure here.
static int jpeg_decode(const char* path, const uint8_t* buf, size_t len, uint8_t** pixels, int* H,
                       int* W, char* err, size_t errlen) {
    tjhandle tj = tjInitDecompress();
    if (!tj) return fail(err, errlen, "%s: cannot start the JPEG decoder: %s", path, tjGetErrorStr2(NULL));
    int w = 0, h = 0, subsamp = 0, colorspace = 0, rc = 1;
    if (tjDecompressHeader3(tj, buf, (unsigned long)len, &w, &h, &subsamp, &colorspace) != 0) {
        fail(err, errlen, "%s: not a readable JPEG: %s", path, tjGetErrorStr2(tj));
    } else if (!check_size(path, h, w, err, errlen)) {
        uint8_t* px = (uint8_t*)malloc((size_t)w * h * 3);
        if (!px) {
            fail(err, errlen, "%s: out of memory for %dx%d pixels", path, w, h);
        } else if (tjDecompress2(tj, buf, (unsigned long)len, px, w, 0, h, TJPF_RGB,
                                 TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS) != 0) {
            fail(err, errlen, "%s: corrupt or truncated JPEG (%s): %s", path,
                 tjGetErrorCode(tj) == TJERR_WARNING ? "warning" : "error", tjGetErrorStr2(tj));
            free(px);
        } else {
            *pixels = px, *H = h, *W = w, rc = 0;
        }
    }
    tjDestroy(tj);
    return rc;
}

// ---------------------------------------------------------------- PNG
static int png_decode_rgb(const char* path, const uint8_t* buf, size_t len, uint8_t** pixels,
                          int* H, int* W, char* err, size_t errlen) {
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&img, buf, len))
        return fail(err, errlen, "%s: not a readable PNG: %s", path, img.message);
    if (check_size(path, (int)img.height, (int)img.width, err, errlen)) {
        png_image_free(&img);
        return 1;
    }
    img.format = PNG_FORMAT_RGB;
    uint8_t* px = (uint8_t*)malloc(PNG_IMAGE_SIZE(img));
    if (!px) {
        png_image_free(&img);
        return fail(err, errlen, "%s: out of memory for %ux%u pixels", path, img.width, img.height);
    }
    if (!png_image_finish_read(&img, NULL, px, 0, NULL)) {
        free(px);
        return fail(err, errlen, "%s: corrupt or truncated PNG: %s", path, img.message);
    }
    *pixels = px, *H = (int)img.height, *W = (int)img.width;
    return 0;
}

int image_read_rgb(const char* path, uint8_t** pixels, int* H, int* W, char* err, size_t errlen) {
    uint8_t* buf = NULL;
    size_t len = 0;
    *pixels = NULL;
    if (slurp(path, &buf, &len, err, errlen)) return 1;
    int rc = is_png(buf, len) ? png_decode_rgb(path, buf, len, pixels, H, W, err, errlen)
                              : jpeg_decode(path, buf, len, pixels, H, W, err, errlen);
    free(buf);
    return rc;
}

// Labels go through libpng's classic API: the simplified API would expand a
// palette to colours, and VOC-style labels store class ids as palette indices.
typedef struct {
    const uint8_t* buf;
    size_t len, pos;
    char msg[200];
} PngSource;

static void png_src_read(png_structp png, png_bytep out, size_t n) {
    PngSource* s = (PngSource*)png_get_io_ptr(png);
    if (n > s->len - s->pos) png_error(png, "file ends before the image data (truncated)");
    memcpy(out, s->buf + s->pos, n);
    s->pos += n;
}

static void png_src_error(png_structp png, png_const_charp msg) {
    PngSource* s = (PngSource*)png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_src_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

static const char* png_color_name(int color_type) {
    switch (color_type) {
        case PNG_COLOR_TYPE_GRAY: return "greyscale";
        case PNG_COLOR_TYPE_PALETTE: return "palette";
        case PNG_COLOR_TYPE_RGB: return "RGB";
        case PNG_COLOR_TYPE_RGB_ALPHA: return "RGBA";
        case PNG_COLOR_TYPE_GRAY_ALPHA: return "greyscale+alpha";
        default: return "unknown colour type";
    }
}

int label_read_png(const char* path, uint8_t** labels, int* H, int* W, char* err, size_t errlen) {
    PngSource src = {NULL, 0, 0, ""};
    uint8_t* buf = NULL;
    *labels = NULL;
    if (slurp(path, &buf, &src.len, err, errlen)) return 1;
    src.buf = buf;
    if (!is_png(buf, src.len)) {
        free(buf);
        return fail(err, errlen, "%s: not a PNG file (label maps must be PNG)", path);
    }
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_src_error, png_src_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        free(buf);
        return fail(err, errlen, "%s: cannot start the PNG decoder (out of memory)", path);
    }
    // Locals changed after setjmp and read after a longjmp must be volatile.
    uint8_t* volatile px = NULL;
    png_bytep* volatile rows = NULL;
    volatile int rc = 1;
    if (setjmp(png_jmpbuf(png))) {
        fail(err, errlen, "%s: corrupt or truncated PNG: %s", path, src.msg);
        goto done;
    }
    png_set_read_fn(png, &src, png_src_read);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int depth = png_get_bit_depth(png, info), ct = png_get_color_type(png, info);
    if ((ct != PNG_COLOR_TYPE_GRAY && ct != PNG_COLOR_TYPE_PALETTE) || depth > 8) {
        fail(err, errlen,
             "%s: label PNG is %d-bit %s; labels must be 8-bit single-channel PNGs (greyscale or "
             "palette) holding class ids, 255 = ignore: %s",
             path, depth, png_color_name(ct),
             ct == PNG_COLOR_TYPE_GRAY ? "re-save the ids as 8-bit greyscale"
                                       : "convert colour-coded maps to class ids first");
        goto done;
    }
    if (check_size(path, (int)h, (int)w, err, errlen)) goto done;
    png_set_packing(png);  // 1/2/4-bit samples to one byte each, values unchanged
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    px = (uint8_t*)malloc((size_t)w * h);
    rows = (png_bytep*)malloc(h * sizeof(png_bytep));
    if (!px || !rows) {
        fail(err, errlen, "%s: out of memory for %ux%u labels", path, w, h);
        goto done;
    }
    for (png_uint_32 y = 0; y < h; y++) rows[y] = px + (size_t)y * w;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    *labels = px, *H = (int)h, *W = (int)w, rc = 0;
    px = NULL;
done:
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    free(px);
    free(buf);
    return rc;
}

// ---------------------------------------------------------------- writers
void image_write_jpeg(const char* path, const uint8_t* rgb, int H, int W, int quality) {
    tjhandle tj = tjInitCompress();
    if (!tj) ZS_FAIL("out of memory?", "%s: cannot start the JPEG encoder: %s", path, tjGetErrorStr2(NULL));
    unsigned char* jpg = NULL;
    unsigned long size = 0;
    // 4:2:0 chroma, as libjpeg's and cv2.imwrite's default and most COCO files.
    if (tjCompress2(tj, rgb, W, 0, H, TJPF_RGB, &jpg, &size, TJSAMP_420, quality, 0) != 0)
        ZS_FAIL("check the image size and quality (1-100)", "%s: JPEG encoding failed: %s", path,
                tjGetErrorStr2(tj));
    file_write_atomic(path, jpg, size);
    tjFree(jpg);
    tjDestroy(tj);
}

static void png_write(const char* path, const uint8_t* px, int H, int W, png_uint_32 format) {
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = (png_uint_32)W;
    img.height = (png_uint_32)H;
    img.format = format;
    png_alloc_size_t size = 0;
    if (!png_image_write_to_memory(&img, NULL, &size, 0, px, 0, NULL))
        ZS_FAIL("check the image size", "%s: PNG encoding failed: %s", path, img.message);
    void* mem = mallocCheck(size);
    if (!png_image_write_to_memory(&img, mem, &size, 0, px, 0, NULL))
        ZS_FAIL("check the image size", "%s: PNG encoding failed: %s", path, img.message);
    file_write_atomic(path, mem, size);
    free(mem);
}

void label_write_png(const char* path, const uint8_t* labels, int H, int W) {
    png_write(path, labels, H, W, PNG_FORMAT_GRAY);
}

void image_write_png_rgb(const char* path, const uint8_t* rgb, int H, int W) {
    png_write(path, rgb, H, W, PNG_FORMAT_RGB);
}
