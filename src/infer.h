// Inference with a CaGNet's parameters (DESIGN §4): the eval-mode forward
// E -> CM -> C's class head at one input size, and the argmax prediction.
//
// Eval mode = StepRng training 0: no dropout in C's trunk and z = mu in CM.
// With model.msc (m->n_scales > 1) the input is also resized by each of
// m->scales[j] (bilinear, align_corners 0, side floor(H * s)), every scale's
// feature x is upsampled to the scale-0 feature size and the element-wise max
// x_max is classified: the fusion of cagnet.c's training forward. A CagInfer
// owns its activations, so it can run beside the training activations of the
// same CagNet (evaluation during training) and only reads m.
#ifndef ZSSEG_INFER_H
#define ZSSEG_INFER_H

#include <stddef.h>
#include <stdint.h>

#include "cagnet.h"

// One input scale of the inference forward.
typedef struct {
    int H, W;      // input size at this scale
    float* img;    // (B, 3, H, W) resized input; NULL at scale 0
    BackboneActs bb;
    CmActs cm;
    float* x_up;   // (B, D, Hf, Wf) x upsampled to scale 0's feature size (scales > 0)
} InferScale;

struct DeviceRun;

typedef struct {
    const struct DeviceRun* dv;  // set: the forward runs on that run's device
    float* logits;               // (B, K, Hf, Wf) host copy of the device's logits
    int B, H, W;  // input batch and size
    int K, D;
    int Hf, Wf;   // feature (logit) size at scale 0
    int n_scales;
    InferScale sc[CAGNET_MAX_SCALES];
    float* x_max;    // (B, D, Hf, Wf) MSC fusion (n_scales > 1)
    uint8_t* which;  // (B*D*Hf*Wf) max_fuse_forward's winner record (unused afterwards)
    DcActs dc;       // C at (B, Hf, Wf); dc.cls holds the logits
    float* in;       // (B, 3, H, W) input padded with zeros when fewer than B samples come
    float* ws;       // shared module workspace
    size_t ws_n;
} CagInfer;

// Activations for (B, 3, H, W) inputs of m (only m's settings are read here).
// While a GPU training run is up (device_run_active), the forward runs there
// with the device's parameters and only the logits come back; no host
// activations are allocated then (extract.c, which reads them, runs outside
// training).
void cag_infer_init(CagInfer* a, const CagNet* m, int B, int H, int W);
// The sizes alone (every field but the buffers, which stay NULL): what
// cag_infer_init allocates for, and what the CUDA mirror lays out on the
// device (cuda/infer_cuda.cu).
void cag_infer_layout(CagInfer* a, const CagNet* m, int B, int H, int W);
void cag_infer_free(CagInfer* a);

// Class logits of the first n (1 <= n <= a->B) images; the remaining B - n
// slots run on zeros and their logits are meaningless. Returns a->dc.cls (on
// a device: a->logits, the host copy).
const float* cag_infer_forward(CagInfer* a, const CagNet* m,
                               const float* img,  // (n, 3, H, W) BGR minus mean
                               int n);            // -> (B, K, Hf, Wf)

// pred = argmax over K at every pixel (ties: the lowest index).
void cag_predict_labels(const float* logits,  // (B, K, H, W)
                        int B, int K, int H, int W,
                        uint8_t* pred);       // (B, H, W)

// Argmax of the logits upsampled bilinearly (align_corners 0, exactly
// resize_bilinear_forward's values) to (Ho, Wo), fused per pixel so the
// (B, K, Ho, Wo) upsampled logits never exist. Ties: the lowest index.
void cag_predict_labels_resized(const float* logits,  // (B, K, Hf, Wf)
                                int B, int K, int Hf, int Wf, int Ho, int Wo,
                                uint8_t* pred);       // (B, Ho, Wo)

#endif  // ZSSEG_INFER_H
