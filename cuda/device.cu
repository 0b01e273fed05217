// Device discovery and selection, the device arena, copies and pinned memory.
#include <stdlib.h>
#include <string.h>

#include "cuda_common.h"

// ---------------------------------------------------------------- devices

extern "C" int cuda_device_count(void) {
    // Without a driver cudaGetDeviceCount fails (error 35) and leaves count
    // untouched, hence the 0 start; any error means "no GPU".
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        cudaGetLastError();  // clear it so later runtime calls do not report it
        return 0;
    }
    return count;
}

extern "C" int cuda_device_select(int local_rank, unsigned char* uuid, char* desc, size_t n) {
    int count = cuda_device_count();
    if (count == 0)
        ZS_FAIL(
            "set run.device = cpu in the config, or check `nvidia-smi` and CUDA_VISIBLE_DEVICES",
            "no CUDA GPU is visible");
    int dev = local_rank % count;
    cudaCheck(cudaSetDevice(dev));
    cudaDeviceProp prop;
    cudaCheck(cudaGetDeviceProperties(&prop, dev));
    memcpy(uuid, prop.uuid.bytes, 16);
    snprintf(desc, n, "GPU %d of %d: %s, sm_%d%d, %.1f GiB", dev, count, prop.name, prop.major,
             prop.minor, (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
    return dev;
}

extern "C" void cuda_memory_info(size_t* free_bytes, size_t* total_bytes) {
    cudaCheck(cudaMemGetInfo(free_bytes, total_bytes));
}

// ---------------------------------------------------------------- arena

struct DeviceArena {
    char* base;
    size_t size, used;
};

// cudaMalloc returns 256-byte aligned memory; keeping every block on that
// boundary satisfies any vector load and cuDNN's alignment preferences.
enum { ARENA_ALIGN = 256 };

extern "C" DeviceArena* device_arena_create(size_t bytes) {
    DeviceArena* a = (DeviceArena*)mallocCheck(sizeof *a);
    a->base = NULL;
    a->size = bytes;
    a->used = 0;
    if (bytes) cudaCheck(cudaMalloc((void**)&a->base, bytes));
    return a;
}

static size_t arena_aligned_used(const DeviceArena* a) {
    return (a->used + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
}

extern "C" size_t device_arena_free_bytes(const DeviceArena* a) {
    size_t start = arena_aligned_used(a);
    return start < a->size ? a->size - start : 0;
}

extern "C" void* device_arena_alloc(DeviceArena* a, size_t bytes) {
    size_t free_bytes = device_arena_free_bytes(a);
    if (bytes > free_bytes)
        ZS_FAIL(
            "reduce the batch size or crop size in the config, or give the device arena more "
            "memory",
            "device arena full: requested %zu bytes, %zu of %zu bytes free", bytes, free_bytes,
            a->size);
    size_t start = arena_aligned_used(a);
    a->used = start + bytes;
    return a->base + start;
}

extern "C" void device_arena_reset(DeviceArena* a) { a->used = 0; }

extern "C" DeviceArena* device_arena_measure(void) {
    DeviceArena* a = (DeviceArena*)mallocCheck(sizeof *a);
    a->base = NULL;
    a->size = SIZE_MAX;
    a->used = 0;
    return a;
}

extern "C" size_t device_arena_used(const DeviceArena* a) { return arena_aligned_used(a); }

extern "C" void device_arena_destroy(DeviceArena* a) {
    if (!a) return;
    cudaCheck(cudaFree(a->base));
    free(a);
}

// ---------------------------------------------------------------- copies

extern "C" void cuda_memcpy_h2d(void* dst, const void* src, size_t bytes) {
    cudaCheck(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}

extern "C" void cuda_memcpy_d2h(void* dst, const void* src, size_t bytes) {
    cudaCheck(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
}

extern "C" void* cuda_pinned_alloc(size_t bytes) {
    void* p = NULL;
    cudaCheck(cudaMallocHost(&p, bytes ? bytes : 1));
    return p;
}

extern "C" void cuda_pinned_free(void* p) { cudaCheck(cudaFreeHost(p)); }
