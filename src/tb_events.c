// TensorBoard event file writer; see tb_events.h.
#include "tb_events.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define TB_MAX_TAG 1024
// wall_time, step, summary headers and the float: well under 64 bytes
#define TB_MAX_EVENT (TB_MAX_TAG + 64)

struct TbWriter {
    FILE* fp;
    char path[4096];
    uint8_t buf[TB_MAX_EVENT];
};

// ---------------------------------------------------------------- CRC-32C
// TFRecord masking, so that a CRC stored next to the data it covers does not
// make CRCs of CRCs degenerate
static uint32_t crc_mask(uint32_t c) { return ((c >> 15) | (c << 17)) + 0xa282ead8u; }

// ---------------------------------------------------------------- encoding
size_t tb_varint(uint8_t* out, uint64_t v) {
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

static size_t varint_len(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static size_t put_le(uint8_t* out, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++) out[i] = (uint8_t)(v >> (8 * i));
    return (size_t)bytes;
}

static size_t put_double(uint8_t* out, double v) {
    uint64_t bits;
    memcpy(&bits, &v, 8);
    return put_le(out, bits, 8);
}

static size_t put_float(uint8_t* out, float v) {
    uint32_t bits;
    memcpy(&bits, &v, 4);
    return put_le(out, bits, 4);
}

// length-delimited field header: key byte, then the payload length
static size_t put_len_field(uint8_t* out, int field, size_t len) {
    out[0] = (uint8_t)(field << 3 | 2);
    return 1 + tb_varint(out + 1, len);
}

static double wall_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// ---------------------------------------------------------------- records
static void write_record(TbWriter* w, const uint8_t* data, size_t n) {
    uint8_t head[12], tail[4];
    put_le(head, n, 8);
    put_le(head + 8, crc_mask(crc32c(head, 8)), 4);
    put_le(tail, crc_mask(crc32c(data, n)), 4);
    fwriteCheck(head, 1, sizeof head, w->fp, w->path);
    fwriteCheck(data, 1, n, w->fp, w->path);
    fwriteCheck(tail, 1, sizeof tail, w->fp, w->path);
}

TbWriter* tb_open(const char* dir) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        ZS_FAIL("check that the run directory exists and is writable",
                "cannot create TensorBoard directory '%s': %s", dir, strerror(errno));
    char host[256] = "localhost";
    if (gethostname(host, sizeof host) != 0) strcpy(host, "localhost");
    host[sizeof host - 1] = '\0';
    TbWriter* w = (TbWriter*)callocCheck(1, sizeof *w);
    if ((size_t)snprintf(w->path, sizeof w->path, "%s/events.out.tfevents.%lld.%s", dir,
                         (long long)time(NULL), host) >= sizeof w->path)
        ZS_FAIL("use a shorter run directory", "path too long: '%s'", dir);
    // append: a restart within the same second continues the same valid file
    w->fp = file_open_append_nofollow(w->path);
    static const char version[] = "brain.Event:2";
    uint8_t* p = w->buf;
    *p++ = 1 << 3 | 1;  // wall_time, 64-bit
    p += put_double(p, wall_time());
    p += put_len_field(p, 3, sizeof version - 1);
    memcpy(p, version, sizeof version - 1);
    p += sizeof version - 1;
    write_record(w, w->buf, (size_t)(p - w->buf));
    tb_flush(w);
    return w;
}

void tb_scalar(TbWriter* w, const char* tag, float value, long step) {
    size_t tag_len = strlen(tag);
    if (tag_len > TB_MAX_TAG)
        ZS_FAIL("use a shorter metric name", "TensorBoard tag of %zu bytes: '%.40s...'", tag_len,
                tag);
    size_t value_len = 1 + varint_len(tag_len) + tag_len + 1 + 4;  // Value message
    size_t summary_len = 1 + varint_len(value_len) + value_len;    // Summary message
    uint8_t* p = w->buf;
    *p++ = 1 << 3 | 1;  // wall_time, 64-bit
    p += put_double(p, wall_time());
    *p++ = 2 << 3 | 0;  // step, varint (negative int64 as 10 bytes, as protobuf does)
    p += tb_varint(p, (uint64_t)(int64_t)step);
    p += put_len_field(p, 5, summary_len);  // Event.summary
    p += put_len_field(p, 1, value_len);    // Summary.value
    p += put_len_field(p, 1, tag_len);      // Value.tag
    memcpy(p, tag, tag_len);
    p += tag_len;
    *p++ = 2 << 3 | 5;  // Value.simple_value, 32-bit
    p += put_float(p, value);
    write_record(w, w->buf, (size_t)(p - w->buf));
}

void tb_flush(TbWriter* w) {
    if (fflush(w->fp) != 0)
        ZS_FAIL("check free disk space and quota", "cannot write '%s': %s", w->path,
                strerror(errno));
}

void tb_close(TbWriter* w) {
    if (!w) return;
    fcloseCheck(w->fp, w->path);
    free(w);
}

const char* tb_path(const TbWriter* w) { return w->path; }
