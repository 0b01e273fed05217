// Library error checks: message from the library, then a hint chosen by the
// kind of failure, so the user knows what to change.
#include "cuda_common.h"

static const char* const HINT_OOM =
    "GPU out of memory: reduce the batch size or crop size in the config (the device arena "
    "grows with them); `nvidia-smi` shows other processes holding GPU memory";
static const char* const HINT_NO_GPU =
    "no usable CUDA GPU or driver: set run.device = cpu in the config, or check `nvidia-smi`, "
    "that the driver supports CUDA 13, and CUDA_VISIBLE_DEVICES";

void cuda_check(cudaError_t err, const char* call, const char* file, int line) {
    if (err == cudaSuccess) return;
    const char* hint;
    switch (err) {
        case cudaErrorMemoryAllocation: hint = HINT_OOM; break;
        case cudaErrorNoDevice:
        case cudaErrorInsufficientDriver:
        case cudaErrorInitializationError:
        case cudaErrorInvalidDevice:
        case cudaErrorDevicesUnavailable: hint = HINT_NO_GPU; break;
        case cudaErrorNoKernelImageForDevice:
        case cudaErrorUnsupportedPtxVersion:
            hint =
                "zsseg was built for other GPU architectures: reconfigure with "
                "-DCMAKE_CUDA_ARCHITECTURES=<your GPU's compute capability, e.g. 86> and rebuild";
            break;
        case cudaErrorIllegalAddress:
        case cudaErrorLaunchFailure:
        case cudaErrorMisalignedAddress:
            hint =
                "a kernel accessed invalid memory: rerun under `compute-sanitizer` with "
                "CUDA_LAUNCH_BLOCKING=1 to find the kernel and the bad index";
            break;
        default:
            hint =
                "rerun with CUDA_LAUNCH_BLOCKING=1 to report the error at the call that caused "
                "it (kernel errors otherwise surface at a later CUDA call)";
    }
    char detail[256];
    snprintf(detail, sizeof detail, "%s (%s)", cudaGetErrorString(err), cudaGetErrorName(err));
    zs_fail(file, line, call, detail, hint);
}

void cudnn_check(cudnnStatus_t st, const char* call, const char* file, int line) {
    if (st == CUDNN_STATUS_SUCCESS) return;
    // cuDNN 9 keeps a longer explanation of the last failure on this thread
    char last[512] = "";
    cudnnGetLastErrorString(last, sizeof last);
    char detail[768];
    snprintf(detail, sizeof detail, "%s%s%s", cudnnGetErrorString(st), last[0] ? ": " : "", last);
    const char* hint;
    if (st == CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED ||
        st == CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED) {
        hint = HINT_OOM;
    } else if (CUDNN_STATUS_CATEGORY(st) == CUDNN_STATUS_NOT_INITIALIZED) {
        hint =
            "cuDNN could not start: check `nvidia-smi`, that every libcudnn*.so.9 sublibrary is "
            "on the library path (LD_LIBRARY_PATH), or set run.device = cpu";
    } else if (CUDNN_STATUS_CATEGORY(st) == CUDNN_STATUS_NOT_SUPPORTED) {
        hint =
            "cuDNN has no kernel for this convolution on this GPU: try run.deterministic = "
            "false or a different crop size; run.device = cpu always works";
    } else if (CUDNN_STATUS_CATEGORY(st) == CUDNN_STATUS_BAD_PARAM) {
        hint =
            "cuDNN rejected the convolution parameters printed above: check the model's "
            "layer shapes against the input size";
    } else {
        hint = "set CUDNN_LOGERR_DBG=1 CUDNN_LOGDEST_DBG=stderr for cuDNN's own log of the failure";
    }
    zs_fail(file, line, call, detail, hint);
}

void cublas_check(cublasStatus_t st, const char* call, const char* file, int line) {
    if (st == CUBLAS_STATUS_SUCCESS) return;
    const char* hint;
    switch (st) {
        case CUBLAS_STATUS_ALLOC_FAILED: hint = HINT_OOM; break;
        case CUBLAS_STATUS_NOT_INITIALIZED: hint = HINT_NO_GPU; break;
        case CUBLAS_STATUS_ARCH_MISMATCH:
        case CUBLAS_STATUS_NOT_SUPPORTED:
            hint = "this GPU lacks the requested math mode: disable TF32 in the config";
            break;
        default:
            hint =
                "rerun with CUDA_LAUNCH_BLOCKING=1, and CUBLAS_LOGINFO_DBG=1 "
                "CUBLAS_LOGDEST_DBG=stderr for cuBLAS's own log";
    }
    zs_fail(file, line, call, cublasGetStatusString(st), hint);
}

void nccl_check(ncclResult_t res, const char* call, const char* file, int line) {
    if (res == ncclSuccess) return;
    const char* hint;
    switch (res) {
        case ncclUnhandledCudaError:
            hint =
                "a CUDA call inside NCCL failed: each rank needs its own GPU (more ranks per node "
                "than GPUs does not work with NCCL); rerun with NCCL_DEBUG=INFO";
            break;
        case ncclSystemError:
        case ncclRemoteError:
            hint =
                "NCCL could not reach the other ranks: rerun with NCCL_DEBUG=INFO, check "
                "NCCL_SOCKET_IFNAME / InfiniBand settings and that no rank died";
            break;
        case ncclInvalidUsage:
        case ncclInvalidArgument:
            hint =
                "NCCL misuse: every rank must run the same collectives in the same order with "
                "the same sizes (same config on all ranks); rerun with NCCL_DEBUG=WARN";
            break;
        default: hint = "rerun with NCCL_DEBUG=INFO for NCCL's own log of the failure";
    }
    zs_fail(file, line, call, ncclGetErrorString(res), hint);
}
