// `zsseg predict`: colour segmentations of image files (DESIGN §5).
//
// Colours. Class c is drawn in the PASCAL VOC colour map entry of its
// label-file id v = cs->ids[c]: bit 3j, 3j+1, 3j+2 of v (j = 0..7) set bit
// 7 - j of red, green and blue. So VOC predictions look like VOC's own
// SegmentationClass images (1 aeroplane = #800000, 2 bicycle = #008000,
// 3 bird = #808000, ...), distinct ids get distinct colours, and neighbouring
// ids differ in a high bit of some channel.
//
// Files per image, in OUT_DIR, STEM = the file name without directory and extension:
//   STEM_seg.png      the class colours
//   STEM_overlay.png  (image + colour + 1) / 2 per channel (integer halves round up)
//   STEM_legend.txt   a '#' header, then one line per class present in the
//                     prediction, by index: index TAB id TAB name TAB #rrggbb
//                     TAB pixel share in percent ("%.2f%%") TAB seen|unseen|ignored
//   STEM_legend.png   a strip of PREDICT_SWATCH x PREDICT_SWATCH*4 swatches,
//                     top to bottom in the order of the legend lines (no text:
//                     no font renderer is linked)
#ifndef ZSSEG_PREDICT_H
#define ZSSEG_PREDICT_H

#include <stdint.h>

#include "cagnet.h"
#include "config.h"
#include "dataset.h"

#define PREDICT_SWATCH 16  // legend swatch height in pixels

// The colour of label-file id v (0..255).
void predict_colour(int v, uint8_t rgb[3]);

// Write the four files above for one image and its prediction.
void predict_write(const char* out_dir, const char* stem,
                   const uint8_t* rgb,   // (H, W, 3) the original image
                   int H, int W,
                   const uint8_t* pred,  // (H, W) training indices < cs->K
                   const DatasetClasses* cs);

// Segment each image file: read it (JPEG or PNG), apply the test transform
// (warp to data.warp_size, BGR minus data.mean), the eval-mode forward with
// batch 1, logits upsampled bilinearly to the ORIGINAL image size, argmax,
// predict_write into out_dir (created if missing). An unreadable image is
// reported with its file name and skipped. Returns 0, or 1 when any image
// could not be read.
int predict_images(const CagNet* m, const Config* cfg, const DatasetClasses* cs,
                   const char* const* paths, int n, const char* out_dir);

#endif  // ZSSEG_PREDICT_H
