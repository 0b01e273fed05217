// Config system: schema sanity, defaults, loading a file with sources, every
// class of error with its message (file, line, suggestion, expected type),
// --set parsing, cross-key checks, the resolved-text round trip and the
// markdown reference.
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "testing.h"

static char tmp_dir[] = "/tmp/zsseg-test-config-XXXXXX";

// Writes `text` to TMP/name and returns the path (caller frees).
static char* write_cfg(const char* name, const char* text) {
    char* path = (char*)malloc(strlen(tmp_dir) + strlen(name) + 2);
    sprintf(path, "%s/%s", tmp_dir, name);
    FILE* fp = fopen(path, "w");
    if (!fp) {
        perror(path);
        exit(1);
    }
    fputs(text, fp);
    fclose(fp);
    return path;
}

static int contains(const char* s, const char* part) { return s && strstr(s, part) != NULL; }

// err must be non-NULL and contain every NULL-terminated fragment.
static void check_error(const char* what, char* err, const char* const* parts) {
    CHECK(err != NULL, "%s: expected an error, got success", what);
    for (int k = 0; err && parts[k]; k++)
        CHECK(contains(err, parts[k]), "%s: message lacks \"%s\":\n  %s", what, parts[k], err);
    free(err);
}
#define EXPECT_ERROR(what, err, ...) check_error(what, err, (const char*[]){__VA_ARGS__, NULL})

// Load `text` as file `name` into a fresh default config; returns the error.
static char* load_text_file(const char* name, const char* text) {
    Config* cfg = config_new();
    char* path = write_cfg(name, text);
    char* err = config_load_file(cfg, path);
    free(path);
    config_free(cfg);
    return err;
}

static void test_schema(void) {
    // Keys are unique, well-formed, grouped contiguously in cfg_groups order.
    int g = 0;
    for (int k = 0; k < cfg_schema_count; k++) {
        const CfgSpec* sp = &cfg_schema[k];
        const char* dot = strchr(sp->key, '.');
        CHECK(dot && !strchr(dot + 1, '.'), "key %s must be group.key", sp->key);
        CHECK(config_schema_find(sp->key) == k, "key %s is duplicated", sp->key);
        CHECK(sp->help && *sp->help && !strchr(sp->help, '\n'), "key %s needs a one-line help",
              sp->key);
        while (g < cfg_group_count && !(dot && strlen(cfg_groups[g].name) == (size_t)(dot - sp->key) &&
                                        strncmp(cfg_groups[g].name, sp->key, (size_t)(dot - sp->key)) == 0))
            g++;
        CHECK(g < cfg_group_count, "key %s is out of group order or in an unknown group", sp->key);
        if (g >= cfg_group_count) g = 0;
        if (sp->type == CFG_CHOICE) CHECK(sp->choices != NULL, "choice %s lacks choices", sp->key);
    }
    CHECK(cfg_schema_count > 100, "schema has %d keys", cfg_schema_count);
    CHECK(config_schema_find("data.crop_size") >= 0 && config_schema_find("data.crop") < 0,
          "config_schema_find");
}

static void test_defaults(void) {
    Config* cfg = config_new();  // aborts if any default breaks its own schema entry
    CHECK(config_get_int(cfg, "data.crop_size") == 368, "crop_size default");
    CHECK(config_get_int(cfg, "data.warp_size") == 513, "warp_size default");
    CHECK(config_get_int(cfg, "data.batch_size") == 8, "batch_size default");
    CHECK(strcmp(config_get_string(cfg, "data.dataset"), "cocostuff") == 0, "dataset default");
    CHECK(strcmp(config_get_string(cfg, "run.device"), "auto") == 0, "device default");
    CHECK(config_get_bool(cfg, "model.msc") == 1, "msc default");
    CHECK(config_get_bool(cfg, "eval.full_resolution") == 0, "full_resolution default");
    CHECK_CLOSE(config_get_float(cfg, "optim.lr"), 2.5e-4, 0, 0, "optim.lr default");
    CHECK_CLOSE(config_get_float(cfg, "optim.d_lr"), 5e-4, 0, 0, "optim.d_lr default");
    CHECK_CLOSE(config_get_float(cfg, "optim.g_lr"), 2e-4, 0, 0, "optim.g_lr default");
    CHECK_CLOSE(config_get_float(cfg, "optim.mixed_lr"), 1e-5, 0, 0, "optim.mixed_lr default");
    CHECK_CLOSE(config_get_float(cfg, "loss.content_weight"), 50, 0, 0, "content weight");
    CHECK_CLOSE(config_get_float(cfg, "loss.kl_weight"), 100, 0, 0, "kl weight");
    CHECK_CLOSE(config_get_float(cfg, "step2.unseen_prior"), 59, 0, 0, "unseen prior");
    CHECK(config_get_int(cfg, "schedule.step1_iters") == 40000, "step1_iters default");
    CHECK(config_get_int(cfg, "schedule.mixed_iters") == 6000, "mixed_iters default");
    int n = 0;
    const double* mean = config_get_float_list(cfg, "data.mean", &n);
    CHECK(n == 3 && mean[0] == 104.008 && mean[1] == 116.669 && mean[2] == 122.675, "data.mean");
    const int* widths = config_get_int_list(cfg, "model.gen_widths", &n);
    CHECK(n == 5 && widths[0] == 1024 && widths[1] == 960 && widths[2] == 864 &&
              widths[3] == 784 && widths[4] == 720, "gen_widths");
    const double* drop = config_get_float_list(cfg, "model.gen_dropouts", &n);
    CHECK(n == 5 && drop[0] == 0.1 && drop[2] == 0.3 && drop[4] == 0.5, "gen_dropouts");
    const double* sig = config_get_float_list(cfg, "loss.mmd_sigmas", &n);
    CHECK(n == 6 && sig[0] == 2 && sig[5] == 60, "loss.mmd_sigmas");
    sig = config_get_float_list(cfg, "zs3net.mmd_sigmas", &n);
    CHECK(n == 6 && sig[5] == 80, "zs3net.mmd_sigmas");
    const char* const* stages = config_get_string_list(cfg, "schedule.stages", &n);
    CHECK(n == 2 && strcmp(stages[0], "step1") == 0 && strcmp(stages[1], "mixed") == 0, "stages");
    CHECK(config_is(cfg, "schedule.stages", "mixed") && !config_is(cfg, "schedule.stages", "st"),
          "config_is on a string list");
    CHECK(config_is(cfg, "model.method", "cagnet") && !config_is(cfg, "model.method", "sign"),
          "config_is on a choice");
    CHECK(strcmp(config_source(cfg, "data.crop_size"), "default") == 0, "default source");
    char* err = config_validate(cfg);
    CHECK(err == NULL, "defaults fail validation: %s", err);
    free(err);
    config_free(cfg);
}

static const char* good_text =
    "# a valid file\n"                                   // 1
    "run = {\n"                                          // 2
    "  seed = 7;\n"                                      // 3
    "  device = \"cpu\";\n"                              // 4
    "};\n"                                               // 5
    "data = {\n"                                         // 6
    "  crop_size = 320;\n"                               // 7
    "  mean = [1.0, 2.5, 3.0];\n"                        // 8
    "  scale_range = [1, 2]; strict_inductive = true;\n" // 9  ints in a float list
    "};\n"                                               // 10
    "loss = { content = \"l2\"; content_weight = 10; };\n"  // 11  int accepted for a float
    "schedule = { stages = (\"step1\", \"mixed\", \"st\"); };\n";  // 12

static void test_valid_file(void) {
    char* path = write_cfg("good.cfg", good_text);
    Config* cfg = config_new();
    char* err = config_load_file(cfg, path);
    CHECK(err == NULL, "valid file failed: %s", err);
    free(err);
    CHECK(config_get_int(cfg, "run.seed") == 7, "run.seed from file");
    CHECK(strcmp(config_get_string(cfg, "run.device"), "cpu") == 0, "run.device from file");
    CHECK(config_get_int(cfg, "data.crop_size") == 320, "crop_size from file");
    int n = 0;
    const double* mean = config_get_float_list(cfg, "data.mean", &n);
    CHECK(n == 3 && mean[0] == 1.0 && mean[1] == 2.5 && mean[2] == 3.0, "mean from file");
    const double* sr = config_get_float_list(cfg, "data.scale_range", &n);
    CHECK(n == 2 && sr[0] == 1.0 && sr[1] == 2.0, "int list elements read as floats");
    CHECK(config_get_bool(cfg, "data.strict_inductive") == 1, "bool from file");
    CHECK(strcmp(config_get_string(cfg, "loss.content"), "l2") == 0, "choice from file");
    CHECK(config_get_float(cfg, "loss.content_weight") == 10.0, "int 10 read as float 10.0");
    const char* const* st = config_get_string_list(cfg, "schedule.stages", &n);
    CHECK(n == 3 && strcmp(st[2], "st") == 0, "string list in () syntax");
    // untouched keys keep defaults
    CHECK(config_get_int(cfg, "data.warp_size") == 513, "untouched warp_size");
    CHECK(config_get_float(cfg, "loss.kl_weight") == 100.0, "untouched kl_weight");
    // sources
    char want[512];
    snprintf(want, sizeof want, "%s:3", path);
    CHECK(strcmp(config_source(cfg, "run.seed"), want) == 0, "source of run.seed: %s",
          config_source(cfg, "run.seed"));
    snprintf(want, sizeof want, "%s:7", path);
    CHECK(strcmp(config_source(cfg, "data.crop_size"), want) == 0, "source of crop_size: %s",
          config_source(cfg, "data.crop_size"));
    snprintf(want, sizeof want, "%s:11", path);
    CHECK(strcmp(config_source(cfg, "loss.content_weight"), want) == 0, "source on a shared line");
    CHECK(strcmp(config_source(cfg, "data.warp_size"), "default") == 0, "untouched source");
    // a later --set wins and records its source
    err = config_apply_set(cfg, "data.crop_size=300");
    CHECK(err == NULL && config_get_int(cfg, "data.crop_size") == 300, "--set after file");
    CHECK(strcmp(config_source(cfg, "data.crop_size"), "--set") == 0, "--set source");
    free(err);
    config_free(cfg);
    free(path);
}

static void test_include(void) {
    char* inc = write_cfg("part.cfg", "model = {\n  backbone = \"tiny\";\n};\n");
    char* main_path = write_cfg("main.cfg", "@include \"part.cfg\"\nrun = { seed = 3; };\n");
    Config* cfg = config_new();
    char* err = config_load_file(cfg, main_path);
    CHECK(err == NULL, "@include relative to the file: %s", err);
    free(err);
    CHECK(strcmp(config_get_string(cfg, "model.backbone"), "tiny") == 0, "included value");
    CHECK(contains(config_source(cfg, "model.backbone"), "part.cfg:2"), "included source: %s",
          config_source(cfg, "model.backbone"));
    config_free(cfg);
    free(inc);
    free(main_path);
}

static void test_file_errors(void) {
    EXPECT_ERROR("unknown key",
                 load_text_file("typo.cfg", "# typo below\ndata = {\n  crop_siz = 320;\n};\n"),
                 "typo.cfg:3", "unknown key 'data.crop_siz'", "did you mean 'data.crop_size'");
    // a key that exists in another group is suggested there
    EXPECT_ERROR("key in the wrong group",
                 load_text_file("group.cfg", "data = {\n  threads = 1;\n};\n"), "group.cfg:2",
                 "'data.threads'", "did you mean 'run.threads'");
    EXPECT_ERROR("misspelt group",
                 load_text_file("dat.cfg", "dat = { crop_size = 300; };\n"), "dat.cfg:1",
                 "'dat.crop_size'", "did you mean 'data.crop_size'");
    EXPECT_ERROR("top-level key",
                 load_text_file("top.cfg", "\nseed = 1;\n"), "top.cfg:2", "not inside a group",
                 "run.seed");
    EXPECT_ERROR("group written as a value",
                 load_text_file("gv.cfg", "data = 5;\n"), "gv.cfg:1", "'data' must be a group");
    EXPECT_ERROR("float for an int",
                 load_text_file("type.cfg", "data = {\n\n  crop_size = 368.5;\n};\n"),
                 "type.cfg:3", "data.crop_size", "got float 368.5", "expected int in [8, 8192]");
    EXPECT_ERROR("string for an int",
                 load_text_file("type2.cfg", "data = { crop_size = \"big\"; };\n"),
                 "type2.cfg:1", "got string \"big\"", "expected int");
    EXPECT_ERROR("string for a bool",
                 load_text_file("type3.cfg", "model = { msc = \"yes\"; };\n"), "model.msc",
                 "expected bool");
    EXPECT_ERROR("scalar for a list",
                 load_text_file("type4.cfg", "model = { msc_scales = 0.5; };\n"),
                 "model.msc_scales", "got float 0.5", "expected list of floats");
    EXPECT_ERROR("list element type",
                 load_text_file("type5.cfg", "schedule = { stages = (\"step1\", 3); };\n"),
                 "schedule.stages", "element 2: got int 3", "list of strings");
    EXPECT_ERROR("out of range",
                 load_text_file("range.cfg", "data = {\n  crop_size = 4;\n};\n"), "range.cfg:2",
                 "data.crop_size", "crop_size: 4 is out of range", "expected int in [8, 8192]");
    EXPECT_ERROR("open bound",
                 load_text_file("range2.cfg", "model = { d_dropout = 1.0; };\n"),
                 "model.d_dropout", "out of range", "[0, 1)");
    EXPECT_ERROR("list element out of range",
                 load_text_file("range3.cfg", "loss = { mmd_sigmas = [2.0, 0.0]; };\n"),
                 "loss.mmd_sigmas", "element 2 (0.0) is out of range", "(0, inf)");
    EXPECT_ERROR("list length",
                 load_text_file("len.cfg", "data = { mean = [1.0, 2.0]; };\n"), "data.mean",
                 "got 2 elements", "list of 3 floats");
    EXPECT_ERROR("bad choice",
                 load_text_file("choice.cfg", "model = {\n backbone = \"resnet152\";\n};\n"),
                 "choice.cfg:2", "\"resnet152\" is not a valid choice",
                 "one of resnet101, resnet50, tiny", "did you mean \"resnet101\"");
    EXPECT_ERROR("choice prefix suggestion",
                 load_text_file("choice2.cfg", "data = { dataset = \"coco\"; };\n"),
                 "did you mean \"cocostuff\"");
    EXPECT_ERROR("bad string-list choice",
                 load_text_file("choice3.cfg", "schedule = { stages = [\"step1\", \"mixd\"]; };\n"),
                 "element 2 \"mixd\" is not a valid choice", "did you mean \"mixed\"");
    EXPECT_ERROR("syntax error",
                 load_text_file("syntax.cfg", "run = {\n  seed = 1;\n  device = ;\n};\n"),
                 "syntax.cfg:3", "syntax error");
    EXPECT_ERROR("mixed-type array (libconfig)",
                 load_text_file("array.cfg", "\ndata = { mean = [1, 2.5, 3.0]; };\n"),
                 "array.cfg:2", "mismatched element type");
    // every problem of a file is reported, not only the first
    char* err = load_text_file("two.cfg", "data = {\n  crop_siz = 1;\n  warp_size = 1;\n};\n");
    CHECK(contains(err, "two.cfg:2") && contains(err, "two.cfg:3"), "both errors: %s", err);
    free(err);
    Config* cfg = config_new();
    EXPECT_ERROR("missing file", config_load_file(cfg, "/nonexistent/x.cfg"),
                 "cannot read config file '/nonexistent/x.cfg'");
    EXPECT_ERROR("string with a name", config_load_string(cfg, "run = { sed = 1; };", "ckpt:config"),
                 "ckpt:config:1", "did you mean 'run.seed'");
    config_free(cfg);
}

// libconfig 1.5 wraps integer literals wider than 32 bits (4294967306 -> 10):
// each is refused with its key, file, line and range instead.
static void test_wide_integers(void) {
    EXPECT_ERROR("wide int",
                 load_text_file("wide.cfg", "data = {\n  batch_size = 4294967306;\n};\n"),
                 "data.batch_size at ", "wide.cfg:2: 4294967306 is out of range [1, 65536]");
    EXPECT_ERROR("wide seed", load_text_file("wide2.cfg", "run = { seed = 4294967296; };\n"),
                 "run.seed at ", "wide2.cfg:1: 4294967296 is out of range [0, 2147483647]");
    EXPECT_ERROR("wide negative", load_text_file("wide3.cfg", "run = { seed = -4294967306; };\n"),
                 "run.seed at ", "-4294967306 is out of range");
    EXPECT_ERROR("wide hex", load_text_file("wide4.cfg", "run = { seed = 0x1FFFFFFFF; };\n"),
                 "run.seed at ", "0x1FFFFFFFF is out of range");
    EXPECT_ERROR("beyond 64 bits",
                 load_text_file("wide5.cfg", "run = { seed = 99999999999999999999999; };\n"),
                 "99999999999999999999999 is out of range");
    EXPECT_ERROR("wide list element, second line",
                 load_text_file("wide6.cfg", "model = { gen_widths = [8,\n  99999999999]; };\n"),
                 "model.gen_widths at ", "wide6.cfg:1: 99999999999 is out of range [1, 65536]");
    EXPECT_ERROR("wide int for a float key",
                 load_text_file("wide7.cfg", "optim = {\n  lr = 4294967306;\n};\n"),
                 "optim.lr at ", "wide7.cfg:2: 4294967306 is out of range");
    // a wide value next to a small one on the same line: only the wide one is blamed
    char* err =
        load_text_file("wide8.cfg", "data = { batch_size = 8 }; run = { seed = 4294967296; };\n");
    CHECK(contains(err, "run.seed at") && !contains(err, "data.batch_size"), "blame: %s", err);
    free(err);
    // the same keys with values that fit, with L-suffixed (int64) and float literals nearby
    Config* cfg = config_new();
    char* path = write_cfg("narrow.cfg",
                           "data = { batch_size = 2147483647; }; # 4294967306 in a comment\n"
                           "run = { seed = 0; threads = 1; };\noptim = { lr = 1e10; };\n");
    err = config_load_file(cfg, path);
    CHECK(err == NULL || !contains(err, "out of range [1"), "false alarm: %s", err);
    free(err);
    free(path);
    err = config_load_string(cfg, "run = { seed = 4294967296; };", "mem");
    CHECK(contains(err, "run.seed at mem:1: 4294967296 is out of range"), "in memory: %s", err);
    free(err);
    err = config_load_string(cfg, "run = { seed = 4294967296L; };", "mem");
    CHECK(contains(err, "does not fit in an int"), "L suffix still refused as before: %s", err);
    free(err);
    config_free(cfg);
}

// A FIFO given as a config file would block libconfig's read forever; a
// directory is not a file either.
static void test_irregular_files(void) {
    char path[256];
    snprintf(path, sizeof path, "%s/fifo.cfg", tmp_dir);
    CHECK(mkfifo(path, 0644) == 0, "mkfifo %s", path);
    Config* cfg = config_new();
    char want[300];
    snprintf(want, sizeof want, "'%s' is a FIFO, not a regular file", path);
    EXPECT_ERROR("FIFO config", config_load_file(cfg, path), want);
    snprintf(want, sizeof want, "'%s' is a directory, not a regular file", tmp_dir);
    EXPECT_ERROR("directory config", config_load_file(cfg, tmp_dir), want);
    config_free(cfg);
}

// run.out_dir as a system directory or $HOME itself is refused at validation.
static void test_out_dir_system(void) {
    const char* bad[] = {"/", "/etc", "/usr/", "/var", "/lib64", "/proc", "//usr//"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        Config* cfg = NULL;
        char set[64];
        snprintf(set, sizeof set, "run.out_dir=\"%s\"", bad[k]);
        const char* sets[] = {set};
        EXPECT_ERROR(set, config_resolve(&cfg, NULL, sets, 1), "run.out_dir (--set)",
                     "a system or home directory", "runs/NAME");
        CHECK(cfg == NULL, "%s accepted", set);
    }
    const char* home = getenv("HOME");
    if (home && *home) {
        Config* cfg = NULL;
        char set[1200];
        snprintf(set, sizeof set, "run.out_dir=\"%s\"", home);
        const char* sets[] = {set};
        EXPECT_ERROR("$HOME", config_resolve(&cfg, NULL, sets, 1), "a system or home directory");
    }
    const char* ok[] = {"run.out_dir=\"/var/tmp/zsseg-run\"", "run.out_dir=\"/library\"",
                        "run.out_dir=\"runs/x\""};
    for (size_t k = 0; k < sizeof ok / sizeof ok[0]; k++) {
        Config* cfg = NULL;
        char* err = config_resolve(&cfg, NULL, &ok[k], 1);
        CHECK(err == NULL, "%s refused: %s", ok[k], err);
        free(err);
        config_free(cfg);
    }
}

static void test_set(void) {
    Config* cfg = config_new();
    char* err;
    int n = 0;
#define SET_OK(a)                                                        \
    do {                                                                 \
        err = config_apply_set(cfg, a);                                  \
        CHECK(err == NULL, "--set %s failed: %s", a, err);               \
        free(err);                                                       \
    } while (0)
    SET_OK("data.crop_size=321");
    CHECK(config_get_int(cfg, "data.crop_size") == 321, "--set int");
    SET_OK("optim.lr=3");  // int for a float
    CHECK(config_get_float(cfg, "optim.lr") == 3.0, "--set int as float");
    SET_OK("optim.lr=1e-7");
    CHECK(config_get_float(cfg, "optim.lr") == 1e-7, "--set float");
    SET_OK("model.msc=FALSE");
    CHECK(config_get_bool(cfg, "model.msc") == 0, "--set bool");
    SET_OK("run.out_dir = runs/x y");
    CHECK(strcmp(config_get_string(cfg, "run.out_dir"), "runs/x y") == 0, "--set string: %s",
          config_get_string(cfg, "run.out_dir"));
    SET_OK("run.out_dir=\"quoted\"");
    CHECK(strcmp(config_get_string(cfg, "run.out_dir"), "quoted") == 0, "--set quoted string");
    SET_OK("loss.mmd_sigmas=1, 2.5,4");
    const double* s = config_get_float_list(cfg, "loss.mmd_sigmas", &n);
    CHECK(n == 3 && s[0] == 1 && s[1] == 2.5 && s[2] == 4, "--set comma list");
    SET_OK("loss.mmd_sigmas=[3.0, 6.0]");
    s = config_get_float_list(cfg, "loss.mmd_sigmas", &n);
    CHECK(n == 2 && s[0] == 3 && s[1] == 6, "--set libconfig list");
    SET_OK("schedule.stages=(\"step1\", \"st\")");
    const char* const* st = config_get_string_list(cfg, "schedule.stages", &n);
    CHECK(n == 2 && strcmp(st[1], "st") == 0, "--set libconfig string list");
    SET_OK("schedule.stages=step1,mixed,st_mixed");
    st = config_get_string_list(cfg, "schedule.stages", &n);
    CHECK(n == 3 && strcmp(st[2], "st_mixed") == 0, "--set comma string list");
    SET_OK("model.msc_scales=");
    config_get_float_list(cfg, "model.msc_scales", &n);
    CHECK(n == 0, "--set empty list");
    CHECK(strcmp(config_source(cfg, "model.msc_scales"), "--set") == 0, "--set source");

    EXPECT_ERROR("--set unknown key", config_apply_set(cfg, "data.crop_siz=3"), "--set",
                 "unknown key 'data.crop_siz'", "did you mean 'data.crop_size'");
    EXPECT_ERROR("--set without =", config_apply_set(cfg, "data.crop_size"), "--set",
                 "group.key=value");
    EXPECT_ERROR("--set not an int", config_apply_set(cfg, "data.crop_size=abc"),
                 "--set data.crop_size=abc", "got \"abc\"", "expected int in [8, 8192]");
    EXPECT_ERROR("--set float for an int", config_apply_set(cfg, "data.crop_size=300.5"),
                 "expected int");
    EXPECT_ERROR("--set out of range", config_apply_set(cfg, "data.crop_size=9000"),
                 "9000 is out of range");
    EXPECT_ERROR("--set bad bool", config_apply_set(cfg, "model.msc=yes"), "expected bool");
    EXPECT_ERROR("--set bad choice", config_apply_set(cfg, "run.device=gpu"), "--set",
                 "not a valid choice", "one of auto, cpu, cuda");
    EXPECT_ERROR("--set list length", config_apply_set(cfg, "data.scale_range=0.5"),
                 "got 1 element", "list of 2 floats");
    EXPECT_ERROR("--set list element", config_apply_set(cfg, "model.gen_widths=10,x"),
                 "element 2: got \"x\"");
    EXPECT_ERROR("--set bad libconfig list", config_apply_set(cfg, "model.gen_widths=[1, 2"),
                 "cannot parse");
    EXPECT_ERROR("--set nan", config_apply_set(cfg, "optim.lr=nan"), "expected float");
    // failed --set leaves the old value
    CHECK(config_get_int(cfg, "data.crop_size") == 321, "value kept after failed --set");
    config_free(cfg);
#undef SET_OK
}

static void test_validate_and_resolve(void) {
    Config* cfg = NULL;
    const char* sets1[] = {"model.gen_dropouts=0.1,0.2"};
    EXPECT_ERROR("paired lists", config_resolve(&cfg, NULL, sets1, 1), "model.gen_dropouts (--set)",
                 "has 2 elements", "model.gen_widths (default) has 5");
    CHECK(cfg == NULL, "config_resolve returns no config on error");
    const char* sets2[] = {"data.scale_range=1.5,0.5"};
    EXPECT_ERROR("ordered range", config_resolve(&cfg, NULL, sets2, 1), "data.scale_range",
                 "larger than max");
    const char* sets3[] = {"sign.posenc_channels=602"};
    EXPECT_ERROR("posenc multiple of 4", config_resolve(&cfg, NULL, sets3, 1), "multiple of 4");
    const char* sets4[] = {"model.gen_widths=8,8", "model.gen_dropouts=0,0.5", "run.seed=5"};
    char* path = write_cfg("resolve.cfg", "run = { seed = 2; threads = 3; };\n");
    char* err = config_resolve(&cfg, path, sets4, 3);
    CHECK(err == NULL && cfg, "config_resolve: %s", err);
    free(err);
    if (cfg) {
        CHECK(config_get_int(cfg, "run.seed") == 5, "--set applies after the file");
        CHECK(config_get_int(cfg, "run.threads") == 3, "file value kept");
        config_free(cfg);
    }
    EXPECT_ERROR("resolve stops at a bad file", config_resolve(&cfg, "/nonexistent.cfg", NULL, 0),
                 "cannot read");
    free(path);
}

// Every key of a and b has the same value.
static void check_same_values(const Config* a, const Config* b, const char* what) {
    for (int k = 0; k < cfg_schema_count; k++) {
        const CfgSpec* sp = &cfg_schema[k];
        int na = 1, nb = 1, same = 1;
        switch (sp->type) {
            case CFG_INT: same = config_get_int(a, sp->key) == config_get_int(b, sp->key); break;
            case CFG_FLOAT: same = config_get_float(a, sp->key) == config_get_float(b, sp->key); break;
            case CFG_BOOL: same = config_get_bool(a, sp->key) == config_get_bool(b, sp->key); break;
            case CFG_STRING: case CFG_CHOICE:
                same = strcmp(config_get_string(a, sp->key), config_get_string(b, sp->key)) == 0;
                break;
            case CFG_INT_LIST: {
                const int* x = config_get_int_list(a, sp->key, &na);
                const int* y = config_get_int_list(b, sp->key, &nb);
                same = na == nb && (na == 0 || memcmp(x, y, (size_t)na * sizeof(int)) == 0);
                break;
            }
            case CFG_FLOAT_LIST: {
                const double* x = config_get_float_list(a, sp->key, &na);
                const double* y = config_get_float_list(b, sp->key, &nb);
                same = na == nb;
                for (int i = 0; same && i < na; i++) same = x[i] == y[i];
                break;
            }
            case CFG_STRING_LIST: {
                const char* const* x = config_get_string_list(a, sp->key, &na);
                const char* const* y = config_get_string_list(b, sp->key, &nb);
                same = na == nb;
                for (int i = 0; same && i < na; i++) same = strcmp(x[i], y[i]) == 0;
                break;
            }
        }
        CHECK(same, "%s: %s differs after the round trip", what, sp->key);
    }
}

static void test_round_trip(void) {
    const char* sets[] = {
        "optim.lr=0.1", "optim.g_lr=1.0000000000000002e-7", "loss.content_weight=3.0000000001",
        "run.out_dir=we\"ird\\dir\ttab", "model.msc_scales=", "data.mean=0,1e-3,254.9999",
        "schedule.stages=st", "data.word_vectors=a b.vec,c#d.vec", "run.seed=2147483647",
        "model.gen_widths=1,2,3", "model.gen_dropouts=0,0.25,0.75",
    };
    Config* a = NULL;
    char* err = config_resolve(&a, NULL, sets, (int)(sizeof sets / sizeof sets[0]));
    CHECK(err == NULL, "round-trip setup: %s", err);
    free(err);
    if (!a) return;
    char* text = config_resolved_text(a);
    CHECK(contains(text, "  crop_size = 368;") && contains(text, "# default"), "text lists defaults");
    CHECK(contains(text, "  lr = 0.1;") && contains(text, "# --set"), "text shows --set values");
    CHECK(contains(text, "  content_weight = 3.0000000001;"), "floats keep their digits");
    CHECK(contains(text, "  msc_scales = [];"), "empty list written as []");
    CHECK(contains(text, "  stages = [\"st\"];"), "string list written in libconfig syntax");
    Config* b = config_new();
    err = config_load_string(b, text, "resolved");
    CHECK(err == NULL, "resolved text does not load back: %s\n%s", err, text);
    free(err);
    check_same_values(a, b, "round trip");
    CHECK(contains(config_source(b, "data.crop_size"), "resolved:"), "sources point into the text");
    // loading it again gives identical text apart from sources
    char* text2 = config_resolved_text(b);
    Config* c = config_new();
    err = config_load_string(c, text2, "resolved2");
    CHECK(err == NULL, "second round: %s", err);
    free(err);
    check_same_values(a, c, "second round trip");
    free(text);
    free(text2);
    config_free(a);
    config_free(b);
    config_free(c);
}

static void test_reference(void) {
    char* md = config_reference_markdown();
    CHECK(contains(md, "| key | type | default | allowed | description |"), "table header");
    CHECK(contains(md, "### `data`"), "group heading");
    CHECK(contains(md, "| `data.crop_size` | int | `368` | [8, 8192] | "), "crop_size row");
    CHECK(contains(md, "| `run.device` | choice | `\"auto\"` | `auto`, `cpu`, `cuda` | "),
          "device row");
    CHECK(contains(md, "| `data.mean` | float list (3) | `[104.008, 116.669, 122.675]` | [0, 255] |"),
          "mean row");
    CHECK(contains(md, "| `optim.lr` | float | `0.00025` | [0, inf) |"), "lr row");
    for (int k = 0; k < cfg_schema_count; k++) {
        char row[128];
        snprintf(row, sizeof row, "| `%s` |", cfg_schema[k].key);
        const char* first = strstr(md, row);
        CHECK(first && !strstr(first + 1, row), "key %s must appear exactly once", cfg_schema[k].key);
    }
    free(md);
}

static const Config* child_cfg;  // the config the getter children read
static void get_missing_key(void) { config_get_int(child_cfg, "data.crop"); }
static void get_wrong_type(void) { config_get_float(child_cfg, "data.crop_size"); }

static void test_getter_misuse(void) {
    Config* cfg = config_new();
    child_cfg = cfg;
    char msg[2048];
    int rc = t_run_child(get_missing_key, 2, msg, sizeof msg);
    CHECK(rc == 1 && contains(msg, "config key 'data.crop' is not in the schema") &&
              contains(msg, "src/schema.c"), "missing key must abort (rc %d): %s", rc, msg);
    rc = t_run_child(get_wrong_type, 2, msg, sizeof msg);
    CHECK(rc == 1 && contains(msg, "'data.crop_size' has type int but was read as float"),
          "wrong getter must abort (rc %d): %s", rc, msg);
    config_free(cfg);
}

int main(void) {
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_schema();
    test_defaults();
    test_valid_file();
    test_include();
    test_file_errors();
    test_wide_integers();
    test_irregular_files();
    test_out_dir_system();
    test_set();
    test_validate_and_resolve();
    test_round_trip();
    test_reference();
    test_getter_misuse();
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp_dir);
    return t_report("test_config");
}
