// 2D convolution through cuDNN's legacy API (deprecated in cuDNN 9 but
// shipped; its deprecation warnings appear only with CUDNN_WARN_DEPRECATED).
// Each new shape gets a plan: descriptors plus one algorithm per direction
// picked from cuDNN's heuristics (no benchmarking, so the choice is the same
// on every rank and every run), cached in the context for later calls.
#include <limits.h>
#include <stdlib.h>

#include "cuda_common.h"

// Algorithms needing more workspace than this are skipped: a faster conv is
// not worth running the training out of memory.
static const size_t CONV_WORKSPACE_MAX = (size_t)1 << 30;

typedef struct {
    int algo;  // cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t
    cudnnMathType_t math;
    size_t ws;
} ConvAlgo;

struct ConvPlan {
    Conv2dDesc d;  // key: d, B, H, W
    int B, H, W;
    cudnnTensorDescriptor_t x, y, bias;  // (B,C_in,H,W), (B,C_out,Ho,Wo), (1,C_out,1,1)
    cudnnFilterDescriptor_t w;           // (C_out, C_in, kh, kw)
    cudnnConvolutionDescriptor_t conv;
    ConvAlgo fwd, bwd_data, bwd_filter;
};

static int plan_matches(const ConvPlan* p, const Conv2dDesc* d, int B, int H, int W) {
    const Conv2dDesc* e = &p->d;
    return p->B == B && p->H == H && p->W == W && e->C_in == d->C_in && e->C_out == d->C_out &&
           e->kh == d->kh && e->kw == d->kw && e->stride == d->stride && e->pad == d->pad &&
           e->dilation == d->dilation;
}

// First heuristic result (best expected speed first) that succeeded, obeys
// the context's determinism and TF32 settings, and fits CONV_WORKSPACE_MAX.
// Without TF32 the conv runs in CUDNN_FMA_MATH: on Ampere and later,
// CUDNN_DEFAULT_MATH lets cuDNN use TF32 tensor cores for fp32 data.
template <typename Perf, typename WsQuery>
static ConvAlgo conv_pick(const CudaContext* ctx, cudnnConvolutionDescriptor_t conv,
                          const Perf* perf, int n, WsQuery ws_query, const char* direction,
                          const ConvPlan* p) {
    for (int i = 0; i < n; i++) {
        if (perf[i].status != CUDNN_STATUS_SUCCESS) continue;
        if (ctx->deterministic && perf[i].determinism != CUDNN_DETERMINISTIC) continue;
        // ALLOW_CONVERSION would round fp32 data down to fp16: never wanted
        if (perf[i].mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) continue;
        if (!ctx->tf32 && perf[i].mathType == CUDNN_TENSOR_OP_MATH) continue;
        ConvAlgo a;
        a.algo = (int)perf[i].algo;
        a.math = ctx->tf32 ? perf[i].mathType : CUDNN_FMA_MATH;
        cudnnCheck(cudnnSetConvolutionMathType(conv, a.math));
        // an algorithm that cannot run in the chosen math type fails here
        if (ws_query(a.algo, &a.ws) != CUDNN_STATUS_SUCCESS || a.ws > CONV_WORKSPACE_MAX) continue;
        return a;
    }
    ZS_FAIL(
        ctx->deterministic ? "no deterministic cuDNN algorithm fits: disable deterministic "
                             "mode in the config, or set run.device = cpu"
                           : "set run.device = cpu, or change the crop/batch size",
        "cuDNN offers no usable %s algorithm for conv C_in %d C_out %d k %dx%d stride %d pad %d "
        "dilation %d on input (%d, %d, %d, %d)",
        direction, p->d.C_in, p->d.C_out, p->d.kh, p->d.kw, p->d.stride, p->d.pad, p->d.dilation,
        p->B, p->d.C_in, p->H, p->W);
}

static void check_int_elems(long long n, const char* what, const ConvPlan* p) {
    if (n > INT_MAX)
        ZS_FAIL("reduce the batch size or crop size: cuDNN's 4-d descriptors index with int",
                "conv %s has %lld elements (batch %d, %dx%d input), more than %d", what, n, p->B,
                p->H, p->W, INT_MAX);
}

static void plan_init(CudaContext* ctx, ConvPlan* p, const Conv2dDesc* d, int B, int H, int W) {
    p->d = *d;
    p->B = B;
    p->H = H;
    p->W = W;
    int Ho = conv2d_out_size(H, d->kh, d->stride, d->pad, d->dilation);
    int Wo = conv2d_out_size(W, d->kw, d->stride, d->pad, d->dilation);
    if (B <= 0 || d->C_in <= 0 || d->C_out <= 0 || Ho <= 0 || Wo <= 0)
        ZS_FAIL("the input is too small for this layer: use a larger crop size",
                "conv k %dx%d stride %d pad %d dilation %d on input (%d, %d, %d, %d) gives output "
                "%dx%d",
                d->kh, d->kw, d->stride, d->pad, d->dilation, B, d->C_in, H, W, Ho, Wo);
    check_int_elems((long long)B * d->C_in * H * W, "input", p);
    check_int_elems((long long)B * d->C_out * Ho * Wo, "output", p);

    cudnnCheck(cudnnCreateTensorDescriptor(&p->x));
    cudnnCheck(cudnnCreateTensorDescriptor(&p->y));
    cudnnCheck(cudnnCreateTensorDescriptor(&p->bias));
    cudnnCheck(cudnnCreateFilterDescriptor(&p->w));
    cudnnCheck(cudnnCreateConvolutionDescriptor(&p->conv));
    cudnnCheck(
        cudnnSetTensor4dDescriptor(p->x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, B, d->C_in, H, W));
    cudnnCheck(
        cudnnSetTensor4dDescriptor(p->y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, B, d->C_out, Ho, Wo));
    cudnnCheck(cudnnSetTensor4dDescriptor(p->bias, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, d->C_out,
                                          1, 1));
    cudnnCheck(cudnnSetFilter4dDescriptor(p->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, d->C_out,
                                          d->C_in, d->kh, d->kw));
    cudnnCheck(cudnnSetConvolution2dDescriptor(p->conv, d->pad, d->pad, d->stride, d->stride,
                                               d->dilation, d->dilation, CUDNN_CROSS_CORRELATION,
                                               CUDNN_DATA_FLOAT));
    // the CPU reference defines the output size; cuDNN must agree
    int n, c, h, w;
    cudnnCheck(cudnnGetConvolution2dForwardOutputDim(p->conv, p->x, p->w, &n, &c, &h, &w));
    if (n != B || c != d->C_out || h != Ho || w != Wo)
        ZS_FAIL("this is a zsseg bug: please report it with the shapes above",
                "cuDNN output shape (%d, %d, %d, %d) differs from conv2d_out_size (%d, %d, %d, %d)",
                n, c, h, w, B, d->C_out, Ho, Wo);

    // heuristics see the math type allowed by the context
    cudnnCheck(
        cudnnSetConvolutionMathType(p->conv, ctx->tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH));
    cudnnHandle_t handle = ctx->cudnn;
    int got = 0;

    cudnnConvolutionFwdAlgoPerf_t fwd[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    cudnnCheck(cudnnGetConvolutionForwardAlgorithm_v7(handle, p->x, p->w, p->conv, p->y,
                                                      CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, fwd));
    p->fwd = conv_pick(
        ctx, p->conv, fwd, got,
        [&](int algo, size_t* bytes) {
            return cudnnGetConvolutionForwardWorkspaceSize(handle, p->x, p->w, p->conv, p->y,
                                                           (cudnnConvolutionFwdAlgo_t)algo, bytes);
        },
        "forward", p);

    cudnnConvolutionBwdDataAlgoPerf_t bd[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    cudnnCheck(cudnnGetConvolutionBackwardDataAlgorithm_v7(
        handle, p->w, p->y, p->conv, p->x, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &got, bd));
    p->bwd_data = conv_pick(
        ctx, p->conv, bd, got,
        [&](int algo, size_t* bytes) {
            return cudnnGetConvolutionBackwardDataWorkspaceSize(
                handle, p->w, p->y, p->conv, p->x, (cudnnConvolutionBwdDataAlgo_t)algo, bytes);
        },
        "backward-data", p);

    cudnnConvolutionBwdFilterAlgoPerf_t bf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    cudnnCheck(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
        handle, p->x, p->y, p->conv, p->w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &got, bf));
    p->bwd_filter = conv_pick(
        ctx, p->conv, bf, got,
        [&](int algo, size_t* bytes) {
            return cudnnGetConvolutionBackwardFilterWorkspaceSize(
                handle, p->x, p->y, p->conv, p->w, (cudnnConvolutionBwdFilterAlgo_t)algo, bytes);
        },
        "backward-filter", p);

    // Grow the shared workspace. Only new shapes get here (the first
    // iterations), so the synchronisation and cudaMalloc stay out of the loop.
    size_t need = p->fwd.ws;
    if (p->bwd_data.ws > need) need = p->bwd_data.ws;
    if (p->bwd_filter.ws > need) need = p->bwd_filter.ws;
    if (need > ctx->workspace_bytes) {
        cudaCheck(cudaStreamSynchronize(ctx->stream));  // earlier convs may still use it
        cudaCheck(cudaFree(ctx->workspace));
        ctx->workspace = NULL;
        cudaCheck(cudaMalloc(&ctx->workspace, need));
        ctx->workspace_bytes = need;
    }
}

static ConvPlan* plan_get(CudaContext* ctx, const Conv2dDesc* d, int B, int H, int W) {
    for (int i = 0; i < ctx->n_plans; i++)
        if (plan_matches(&ctx->plans[i], d, B, H, W)) return &ctx->plans[i];
    if (ctx->n_plans == ctx->cap_plans) {
        int cap = ctx->cap_plans ? 2 * ctx->cap_plans : 16;
        ConvPlan* grown = (ConvPlan*)realloc(ctx->plans, (size_t)cap * sizeof *grown);
        if (!grown) ZS_FAIL("the machine is out of host memory", "conv plan cache: %d plans", cap);
        ctx->plans = grown;
        ctx->cap_plans = cap;
    }
    ConvPlan* p = &ctx->plans[ctx->n_plans];
    plan_init(ctx, p, d, B, H, W);
    ctx->n_plans++;
    return p;
}

void conv_plans_destroy(CudaContext* ctx) {
    for (int i = 0; i < ctx->n_plans; i++) {
        ConvPlan* p = &ctx->plans[i];
        cudnnCheck(cudnnDestroyTensorDescriptor(p->x));
        cudnnCheck(cudnnDestroyTensorDescriptor(p->y));
        cudnnCheck(cudnnDestroyTensorDescriptor(p->bias));
        cudnnCheck(cudnnDestroyFilterDescriptor(p->w));
        cudnnCheck(cudnnDestroyConvolutionDescriptor(p->conv));
    }
    free(ctx->plans);
    ctx->plans = NULL;
    ctx->n_plans = ctx->cap_plans = 0;
}

extern "C" void conv2d_forward_cuda(CudaContext* ctx, float* out, const float* inp,
                                    const float* weight, const float* bias, const Conv2dDesc* d,
                                    int B, int H, int W) {
    ConvPlan* p = plan_get(ctx, d, B, H, W);
    const float zero = 0.0f, one = 1.0f;
    cudnnCheck(cudnnSetConvolutionMathType(p->conv, p->fwd.math));
    cudnnCheck(cudnnConvolutionForward(ctx->cudnn, &one, p->x, inp, p->w, weight, p->conv,
                                       (cudnnConvolutionFwdAlgo_t)p->fwd.algo, ctx->workspace,
                                       ctx->workspace_bytes, &zero, p->y, out));
    // broadcast (1, C_out, 1, 1) over the output
    if (bias) cudnnCheck(cudnnAddTensor(ctx->cudnn, &one, p->bias, bias, &one, p->y, out));
}

// beta = 1 everywhere: cuDNN adds into the existing gradients.
extern "C" void conv2d_backward_cuda(CudaContext* ctx, float* dinp, float* dweight, float* dbias,
                                     const float* dout, const float* inp, const float* weight,
                                     const Conv2dDesc* d, int B, int H, int W) {
    ConvPlan* p = plan_get(ctx, d, B, H, W);
    const float one = 1.0f;
    if (dweight) {  // NULL: input gradient only (G's loss through a frozen D)
        cudnnCheck(cudnnSetConvolutionMathType(p->conv, p->bwd_filter.math));
        cudnnCheck(cudnnConvolutionBackwardFilter(
            ctx->cudnn, &one, p->x, inp, p->y, dout, p->conv,
            (cudnnConvolutionBwdFilterAlgo_t)p->bwd_filter.algo, ctx->workspace,
            ctx->workspace_bytes, &one, p->w, dweight));
    }
    if (dinp) {
        cudnnCheck(cudnnSetConvolutionMathType(p->conv, p->bwd_data.math));
        cudnnCheck(cudnnConvolutionBackwardData(ctx->cudnn, &one, p->w, weight, p->y, dout, p->conv,
                                                (cudnnConvolutionBwdDataAlgo_t)p->bwd_data.algo,
                                                ctx->workspace, ctx->workspace_bytes, &one, p->x,
                                                dinp));
    }
    if (dbias)
        cudnnCheck(
            cudnnConvolutionBackwardBias(ctx->cudnn, &one, p->y, dout, &one, p->bias, dbias));
}
