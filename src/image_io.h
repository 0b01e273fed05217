// Image and label files: JPEG through libjpeg-turbo (TurboJPEG API), PNG
// through libpng. Readers never exit: a missing, truncated or corrupt file
// returns nonzero with a message naming the file in err, so the loader can
// skip and count the sample.
#ifndef ZSSEG_IMAGE_IO_H
#define ZSSEG_IMAGE_IO_H

#include <stddef.h>
#include <stdint.h>

// Decode a JPEG (or a PNG, recognised by its signature whatever the file's
// extension) to interleaved 8-bit RGB, (H, W, 3).
// *pixels is malloc'd by the reader on success. Returns 0 on success.
int image_read_rgb(const char* path, uint8_t** pixels, int* H, int* W, char* err, size_t errlen);
// Decode an 8-bit single-channel (grey or palette index) PNG label map, (H, W).
// Palette PNGs give their indices (VOC stores class ids so), not colours; 16-bit
// and colour PNGs are rejected with a message saying how to convert them.
int label_read_png(const char* path, uint8_t** labels, int* H, int* W, char* err, size_t errlen);
// Writers (used by `zsseg synth` and `zsseg predict`); they exit with a clear
// error on failure (a writer failing means the disk or path is unusable).
void image_write_jpeg(const char* path, const uint8_t* rgb /* (H, W, 3) */, int H, int W, int quality);
void label_write_png(const char* path, const uint8_t* labels /* (H, W) */, int H, int W);
void image_write_png_rgb(const char* path, const uint8_t* rgb /* (H, W, 3) */, int H, int W);

#endif  // ZSSEG_IMAGE_IO_H
