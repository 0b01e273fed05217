// TensorBoard events: CRC-32C known answers (RFC 3720 / iSCSI vectors) and
// against a bitwise CRC written here, varint bytes, and an event file of four
// scalars read back by two independent decoders: a small C parser below
// (both CRCs, every protobuf field) and tests/tb_read.py (Python stdlib; run
// when python3 exists). Corrupted copies must be rejected; an unusable
// directory must stop with its path in the message.
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common.h"
#include "tb_events.h"
#include "testing.h"

static char tmpdir[] = "/tmp/test_tb_events_XXXXXX";

static uint32_t crc_bitwise(const uint8_t* p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int b = 0; b < 8; b++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    }
    return ~c;
}

static void test_crc(void) {
    uint8_t buf[32];
    CHECK(crc32c((const uint8_t*)"123456789", 9) == 0xE3069283u, "crc32c(\"123456789\")");
    memset(buf, 0, 32);
    CHECK(crc32c(buf, 32) == 0x8A9136AAu, "crc32c(32 x 0x00)");
    memset(buf, 0xFF, 32);
    CHECK(crc32c(buf, 32) == 0x62A8AB43u, "crc32c(32 x 0xFF)");
    for (int i = 0; i < 32; i++) buf[i] = (uint8_t)i;
    CHECK(crc32c(buf, 32) == 0x46DD794Eu, "crc32c(0..31)");
    for (int i = 0; i < 32; i++) buf[i] = (uint8_t)(31 - i);
    CHECK(crc32c(buf, 32) == 0x113FDB5Cu, "crc32c(31..0)");
    CHECK(crc32c(buf, 0) == 0, "crc32c(empty)");
    uint8_t r[1000];
    for (int i = 0; i < 1000; i++) r[i] = (uint8_t)(hd_rng_uniform(5, 0, i) * 256);
    int ok = 1;
    for (size_t n = 0; n <= 1000; n += 37) ok &= crc32c(r, n) == crc_bitwise(r, n);
    CHECK(ok, "table CRC equals bitwise CRC on random data");
}

static void check_varint(uint64_t v, const uint8_t* want, size_t n) {
    uint8_t out[16];
    memset(out, 0xEE, sizeof out);
    size_t got = tb_varint(out, v);
    CHECK(got == n && memcmp(out, want, n) == 0 && out[n] == 0xEE, "varint(%llu): %zu bytes",
          (unsigned long long)v, got);
}

static void test_varint(void) {
    check_varint(0, (const uint8_t[]){0x00}, 1);
    check_varint(1, (const uint8_t[]){0x01}, 1);
    check_varint(127, (const uint8_t[]){0x7F}, 1);
    check_varint(128, (const uint8_t[]){0x80, 0x01}, 2);
    check_varint(300, (const uint8_t[]){0xAC, 0x02}, 2);
    check_varint(16384, (const uint8_t[]){0x80, 0x80, 0x01}, 3);
    check_varint(1ull << 63,
                 (const uint8_t[]){0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, 10);
    check_varint(UINT64_MAX,
                 (const uint8_t[]){0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}, 10);
}

// ---------------------------------------------------------------- C decoder
typedef struct {
    int has_wall, has_step, has_version, has_value;
    double wall;
    int64_t step;
    char version[32];
    char tag[1100];
    float value;
} Ev;

static int get_varint(const uint8_t* p, size_t n, size_t* pos, uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (*pos >= n) return -1;
        uint8_t b = p[(*pos)++];
        *v |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) return 0;
    }
    return -1;
}

static uint64_t get_le(const uint8_t* p, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

// One field header; for wire type 2 also the payload bounds. 0 ok, -1 malformed.
static int next_field(const uint8_t* p, size_t n, size_t* pos, int* field, int* wt, size_t* len) {
    uint64_t key;
    if (get_varint(p, n, pos, &key)) return -1;
    *field = (int)(key >> 3);
    *wt = (int)(key & 7);
    uint64_t l = *wt == 1 ? 8 : *wt == 5 ? 4 : 0;
    if (*wt == 2 && get_varint(p, n, pos, &l)) return -1;
    *len = (size_t)l;
    return l > n - *pos ? -1 : 0;
}

static int parse_value(const uint8_t* p, size_t n, Ev* ev) {
    size_t pos = 0, len;
    int f, wt, got_tag = 0;
    while (pos < n) {
        if (next_field(p, n, &pos, &f, &wt, &len)) return -1;
        if (f == 1 && wt == 2 && len < sizeof ev->tag) {
            memcpy(ev->tag, p + pos, len);
            ev->tag[len] = '\0';
            got_tag = 1;
        } else if (f == 2 && wt == 5) {
            uint32_t bits = (uint32_t)get_le(p + pos, 4);
            memcpy(&ev->value, &bits, 4);
            ev->has_value = 1;
        } else {
            return -1;
        }
        pos += len;
    }
    return got_tag && ev->has_value ? 0 : -1;
}

static int parse_event(const uint8_t* p, size_t n, Ev* ev) {
    memset(ev, 0, sizeof *ev);
    size_t pos = 0, len;
    int f, wt;
    while (pos < n) {
        if (next_field(p, n, &pos, &f, &wt, &len)) return -1;
        if (f == 1 && wt == 1) {
            uint64_t bits = get_le(p + pos, 8);
            memcpy(&ev->wall, &bits, 8);
            ev->has_wall = 1;
        } else if (f == 2 && wt == 0) {
            uint64_t v;
            if (get_varint(p, n, &pos, &v)) return -1;
            ev->step = (int64_t)v;
            ev->has_step = 1;
        } else if (f == 3 && wt == 2 && len < sizeof ev->version) {
            memcpy(ev->version, p + pos, len);
            ev->has_version = 1;
        } else if (f == 5 && wt == 2) {
            // Summary { repeated Value value = 1 }: exactly one value here
            size_t sp = 0, vl;
            int sf, swt;
            if (next_field(p + pos, len, &sp, &sf, &swt, &vl) || sf != 1 || swt != 2 ||
                sp + vl != len || parse_value(p + pos + sp, vl, ev))
                return -1;
        } else {
            return -1;
        }
        pos += len;
    }
    return 0;
}

// Records of a whole file: 0 ok, -1 CRC mismatch, -2 truncated or malformed.
static int decode_file(const uint8_t* buf, size_t n, Ev* evs, int max, int* count) {
    size_t pos = 0;
    *count = 0;
    while (pos < n) {
        if (pos + 12 > n || *count == max) return -2;
        uint64_t len = get_le(buf + pos, 8);
        uint32_t m = crc_bitwise(buf + pos, 8);
        if (get_le(buf + pos + 8, 4) != (uint32_t)(((m >> 15) | (m << 17)) + 0xa282ead8u))
            return -1;
        if (len > n - pos - 16) return -2;
        const uint8_t* data = buf + pos + 12;
        m = crc_bitwise(data, len);
        if (get_le(data + len, 4) != (uint32_t)(((m >> 15) | (m << 17)) + 0xa282ead8u)) return -1;
        if (parse_event(data, len, &evs[(*count)++])) return -2;
        pos += 16 + len;
    }
    return 0;
}

// ---------------------------------------------------------------- file round trip
#define NS 4
static char long_tag[301];
static const char* tags[NS] = {"loss/ce", "lr/backbone", "eval/hIoU", long_tag};
static const float vals[NS] = {0.6931f, 2.5e-4f, -1.5f, 3.0e38f};
// a multi-byte step, and a negative one (10-byte varint)
static const long steps[NS] = {0, 100, 123456789012L, -7};

static void check_events(const Ev* ev, int count, double t0, double t1) {
    CHECK(count == NS + 1, "%d events, want %d", count, NS + 1);
    if (count != NS + 1) return;
    CHECK(ev[0].has_wall && ev[0].has_version && !ev[0].has_step && !ev[0].has_value &&
              strcmp(ev[0].version, "brain.Event:2") == 0,
          "first event: wall_time + file_version only ('%s')", ev[0].version);
    for (int i = 0; i < NS; i++) {
        const Ev* e = &ev[i + 1];
        CHECK(e->has_wall && e->has_step && !e->has_version && e->has_value, "scalar %d fields", i);
        CHECK(e->step == steps[i], "scalar %d step %lld want %ld", i, (long long)e->step, steps[i]);
        CHECK(strcmp(e->tag, tags[i]) == 0, "scalar %d tag '%.20s'", i, e->tag);
        CHECK(memcmp(&e->value, &vals[i], 4) == 0, "scalar %d value %.9g want %.9g", i, e->value,
              vals[i]);
    }
    for (int i = 0; i <= NS; i++)
        CHECK(ev[i].wall >= t0 - 1e-3 && ev[i].wall <= t1 + 1e-3 &&
                  (i == 0 || ev[i].wall >= ev[i - 1].wall),
              "event %d wall_time %.6f outside [%.6f, %.6f] or decreasing", i, ev[i].wall, t0, t1);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// tests/tb_read.py on PATH: its lines must match the C decoder's events.
static void check_python(const char* path, const Ev* ev, int count, int corrupt) {
    char out[512], cmd[2048];
    snprintf(out, sizeof out, "%s/py.txt", tmpdir);
    snprintf(cmd, sizeof cmd, "python3 %s/tests/tb_read.py %s > %s 2>&1", ZSSEG_SOURCE_DIR, path,
             out);
    int rc = system(cmd);
    if (corrupt) {
        CHECK(rc != 0, "tb_read.py rejects a corrupted file");
        return;
    }
    CHECK(rc == 0, "tb_read.py failed (%d)", rc);
    FILE* fp = fopenCheck(out, "r");
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof line, fp)) {
        line[strcspn(line, "\n")] = '\0';
        char* col[5];
        char* save = NULL;
        int c = 0;
        for (char* tok = strtok_r(line, "\t", &save); tok && c < 5;
             tok = strtok_r(NULL, "\t", &save))
            col[c++] = tok;
        if (c != 5 || n >= count) {
            CHECK(0, "tb_read.py line %d: %d columns", n, c);
            break;
        }
        const Ev* e = &ev[n];
        CHECK(strtod(col[0], NULL) == e->wall, "py event %d wall_time %s", n, col[0]);
        if (n == 0) {
            CHECK(strcmp(col[1], "-") == 0 && strcmp(col[2], "brain.Event:2") == 0 &&
                      strcmp(col[3], "-") == 0 && strcmp(col[4], "-") == 0,
                  "py first event");
        } else {
            CHECK(strtoll(col[1], NULL, 10) == steps[n - 1] && strcmp(col[2], "-") == 0 &&
                      strcmp(col[3], tags[n - 1]) == 0 &&
                      strtod(col[4], NULL) == (double)vals[n - 1],
                  "py scalar %d: step %s tag %.20s value %s", n - 1, col[1], col[3], col[4]);
        }
        n++;
    }
    fclose(fp);
    CHECK(n == count, "tb_read.py printed %d events, want %d", n, count);
}

static void test_file(void) {
    for (int i = 0; i < 300; i++) long_tag[i] = (char)('a' + i % 26);  // 2-byte length varints
    char dir[300];
    snprintf(dir, sizeof dir, "%s/tb", tmpdir);  // created by tb_open
    double t0 = now();
    TbWriter* w = tb_open(dir);
    for (int i = 0; i < NS; i++) tb_scalar(w, tags[i], vals[i], steps[i]);
    tb_flush(w);
    double t1 = now();
    char path[512];
    snprintf(path, sizeof path, "%s", tb_path(w));

    char prefix[400], host[256] = "";
    snprintf(prefix, sizeof prefix, "%s/events.out.tfevents.", dir);
    gethostname(host, sizeof host);
    long long stamp = strtoll(path + strlen(prefix), NULL, 10);
    CHECK(strncmp(path, prefix, strlen(prefix)) == 0 && stamp >= (long long)t0 - 1 &&
              stamp <= (long long)t1 + 1 && strstr(path + strlen(prefix), host),
          "file name %s", path);

    // read while still open: tb_flush made every record visible
    size_t n;
    uint8_t* buf = (uint8_t*)file_read_all(path, &n);
    Ev ev[NS + 2];
    int count;
    CHECK(decode_file(buf, n, ev, NS + 2, &count) == 0, "C decoder: clean file");
    check_events(ev, count, t0, t1);
    tb_close(w);
    int python = system("command -v python3 > /dev/null 2>&1") == 0;
    if (python)
        check_python(path, ev, count, 0);
    else
        printf("python3 not found: skipping tests/tb_read.py\n");

    // flip one data byte of the third record, then one length byte
    size_t r2 = 0;
    for (int i = 0; i < 2; i++) r2 += 16 + get_le(buf + r2, 8);
    Ev scratch[NS + 2];
    buf[r2 + 12 + 5] ^= 0x10;
    CHECK(decode_file(buf, n, scratch, NS + 2, &count) == -1, "C decoder: data CRC mismatch");
    if (python) {
        char bad[300];
        snprintf(bad, sizeof bad, "%s/corrupt.tfevents", tmpdir);
        file_write_atomic(bad, buf, n);
        check_python(bad, ev, count, 1);
    }
    buf[r2 + 12 + 5] ^= 0x10;
    buf[r2 + 1] ^= 0x01;
    CHECK(decode_file(buf, n, scratch, NS + 2, &count) == -1, "C decoder: length CRC mismatch");
    free(buf);
}

// ---------------------------------------------------------------- errors
static const char* err_dir;
static void child_open(void) { tb_open(err_dir); }
static void child_long_tag(void) {
    char tag[1026];
    memset(tag, 'x', 1025);
    tag[1025] = '\0';
    char dir[300];
    snprintf(dir, sizeof dir, "%s/tb2", tmpdir);
    tb_scalar(tb_open(dir), tag, 1.0f, 0);
}

// fn must exit with status 1 and name `needle` on stderr
static int exits_naming(void (*fn)(void), const char* needle) {
    char log[300];
    snprintf(log, sizeof log, "%s/stderr.txt", tmpdir);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen(log, "w", stderr)) _exit(2);
        fn();
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    char* text = file_read_all(log, NULL);
    int ok = WIFEXITED(st) && WEXITSTATUS(st) == 1 && strstr(text, needle) != NULL;
    if (!ok) fprintf(stderr, "child stderr: %s\n", text);
    free(text);
    return ok;
}

static void test_errors(void) {
    char file[300], dir[400];
    snprintf(file, sizeof file, "%s/plain_file", tmpdir);
    file_write_atomic(file, "x", 1);
    snprintf(dir, sizeof dir, "%s/tb", file);  // parent is not a directory
    err_dir = dir;
    CHECK(exits_naming(child_open, dir), "tb_open under a regular file names the path");
    snprintf(dir, sizeof dir, "%s/no/such/parent", tmpdir);
    CHECK(exits_naming(child_open, dir), "tb_open with a missing parent names the path");
    CHECK(exits_naming(child_long_tag, "tag of 1025 bytes"), "tag over 1024 bytes is fatal");
}

int main(void) {
    if (!mkdtemp(tmpdir)) ZS_FAIL("check /tmp", "mkdtemp failed");
    test_crc();
    test_varint();
    test_file();
    test_errors();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return t_report("test_tb_events");
}
