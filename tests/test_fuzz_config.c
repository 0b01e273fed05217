// Config fuzz (issue 13): seeded mutations of the shipped configs (byte
// flips, deletions, truncations, spliced tokens, huge numbers) through
// config_load_string, config_validate and config_resolved_text. Each case
// runs in a child so a crash is counted, not fatal; under the sanitizer
// build (label unit) any memory error or UB ends the child abnormally.
// Every case must end in a clean error or a config that loads and prints.
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "config.h"
#include "testing.h"

#define CASES_PER_FILE 150
#define EXIT_ACCEPTED 10
#define EXIT_REJECTED 11

static uint64_t next(uint64_t* s) {  // splitmix64: the same cases everywhere
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static const char* const tokens[] = {
    "4294967306", "-9223372036854775809", "1e999", "nan", "\"", "{", "}", "[", "]", ";", "=",
    "0x1FFFFFFFF", "@include \"/dev/zero\"", "\\", "\n", "L", "99999999999999999999999", "()",
    "run.out_dir", "\"\"", "-", ".", "true", "1.5e308"};

// One mutated copy of text (caller frees).
static char* mutate(const char* text, size_t n, uint64_t* s) {
    size_t cap = n + 256;
    char* out = (char*)malloc(cap + 1);
    memcpy(out, text, n + 1);
    size_t len = n;
    int edits = 1 + (int)(next(s) % 4);
    for (int e = 0; e < edits && len > 0; e++) {
        size_t at = next(s) % len;
        switch (next(s) % 4) {
        case 0:  // flip one bit (never to NUL: the text stays a C string)
            out[at] ^= (char)(1u << (next(s) % 7));
            if (!out[at]) out[at] = '?';
            break;
        case 1: {  // delete a run
            size_t k = 1 + next(s) % 16;
            if (at + k > len) k = len - at;
            memmove(out + at, out + at + k, len - at - k + 1);
            len -= k;
            break;
        }
        case 2:  // truncate
            out[at] = '\0';
            len = at;
            break;
        default: {  // splice a token
            const char* t = tokens[next(s) % (sizeof tokens / sizeof tokens[0])];
            size_t k = strlen(t);
            if (len + k > cap) break;
            memmove(out + at + k, out + at, len - at + 1);
            memcpy(out + at, t, k);
            len += k;
        }
        }
    }
    return out;
}

static int run_case(const char* text) {
    Config* c = config_new();
    char* err = config_load_string(c, text, "fuzz");
    if (!err) err = config_validate(c);
    if (!err) {
        char* printed = config_resolved_text(c);
        free(printed);
    }
    int accepted = err == NULL;
    free(err);
    config_free(c);
    return accepted ? EXIT_ACCEPTED : EXIT_REJECTED;
}

int main(void) {
    static const char* const files[] = {"configs/tiny_test.cfg", "configs/cocostuff_cagnet.cfg"};
    int cases = 0, accepted = 0, rejected = 0, crashes = 0;
    uint64_t seed = 13;
    for (int f = 0; f < 2; f++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", ZSSEG_SOURCE_DIR, files[f]);
        size_t n = 0;
        char* text = file_read_all(path, &n);
        CHECK(run_case(text) == EXIT_ACCEPTED, "%s itself loads", files[f]);
        for (int k = 0; k < CASES_PER_FILE; k++) {
            char* m = mutate(text, n, &seed);
            fflush(NULL);
            pid_t pid = fork();
            if (pid == 0) {
                // a failing check inside the config code may write to stderr: keep it quiet
                if (!freopen("/dev/null", "w", stderr)) _exit(2);
                alarm(10);  // a hang is a failure too (SIGALRM)
                _exit(run_case(m));
            }
            int st = 0;
            waitpid(pid, &st, 0);
            cases++;
            if (WIFEXITED(st) && WEXITSTATUS(st) == EXIT_ACCEPTED) {
                accepted++;
            } else if (WIFEXITED(st) && WEXITSTATUS(st) == EXIT_REJECTED) {
                rejected++;
            } else {
                crashes++;
                fprintf(stderr, "FAIL %s case %d: %s %d\n", files[f], k,
                        WIFSIGNALED(st) ? "signal" : "exit status",
                        WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
            }
            free(m);
        }
        free(text);
    }
    printf("config fuzz: %d cases, %d clean errors, %d accepted, %d crashes\n", cases, rejected,
           accepted, crashes);
    CHECK(crashes == 0, "no case crashes or exits abnormally");
    CHECK(rejected > cases / 2, "most mutations are refused (%d of %d)", rejected, cases);
    return t_report("test_fuzz_config");
}
