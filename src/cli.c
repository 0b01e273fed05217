#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#ifndef ZSSEG_VERSION
#define ZSSEG_VERSION "dev"
#endif

// Options every command takes, listed first in each usage text.
static const CliOption common_options[] = {
    {"config", 'c', "FILE", "libconfig file; keys it does not set keep their defaults"},
    {"set", 0, "KEY=VALUE", "override a key after the file (repeatable): --set data.batch_size=16"},
    {"help", 'h', NULL, "show this help and exit"},
};
#define N_COMMON ((int)(sizeof common_options / sizeof common_options[0]))

static int count_options(const CliOption* opts) {
    int n = 0;
    while (opts && opts[n].name) n++;
    return n;
}

static void print_option(FILE* fp, const CliOption* o) {
    char left[64];
    snprintf(left, sizeof left, "%c%c%c --%s%s%s", o->short_name ? '-' : ' ',
             o->short_name ? o->short_name : ' ', o->short_name ? ',' : ' ', o->name,
             o->metavar ? " " : "", o->metavar ? o->metavar : "");
    fprintf(fp, "  %-28s %s\n", left, o->help);
}

static void print_command_usage(FILE* fp, const CliCommand* c) {
    fprintf(fp, "Usage: zsseg %s [-c FILE] [--set KEY=VALUE]...%s%s%s\n\n", c->name,
            count_options(c->options) ? " [options]" : "", c->positionals ? " " : "",
            c->positionals ? c->positionals : "");
    fprintf(fp, "%s\n\nOptions:\n", c->description);
    for (int k = 0; k < N_COMMON; k++) print_option(fp, &common_options[k]);
    for (int k = 0; k < count_options(c->options); k++) print_option(fp, &c->options[k]);
    fprintf(fp, "\nEvery config key is listed by `zsseg config --reference`.\n");
}

static void print_usage(FILE* fp, const CliCommand* commands, int ncommands) {
    fprintf(fp,
            "zsseg %s: zero-shot semantic segmentation by feature generation (CaGNet and "
            "relatives)\n\n"
            "Usage: zsseg <command> [options]\n"
            "       mpirun -np N zsseg train -c FILE    (one rank per GPU or per CPU socket)\n\n"
            "Commands:\n",
            ZSSEG_VERSION);
    for (int k = 0; k < ncommands; k++)
        fprintf(fp, "  %-9s %s\n", commands[k].name, commands[k].summary);
    fprintf(fp,
            "\nGlobal options:\n  -h, --help     show this help\n      --version  print the "
            "version\n\n"
            "Run `zsseg <command> --help` for a command's options.\n");
}

const char* cli_option(const CliArgs* args, const char* name) {
    const CliOption* opts = args->command->options;
    for (int k = 0; k < count_options(opts); k++)
        if (strcmp(opts[k].name, name) == 0) return args->values[k];
    ZS_FAIL("this is a bug in zsseg: declare the option in the command's table in src/main.c",
            "zsseg %s has no option --%s", args->command->name, name);
}

// Index into common_options (0..N_COMMON-1) or N_COMMON + command option index; -1 if unknown.
static int find_option(const CliCommand* c, const char* long_name, size_t len, char short_name) {
    int nc = count_options(c->options);
    for (int k = 0; k < N_COMMON + nc; k++) {
        const CliOption* o = k < N_COMMON ? &common_options[k] : &c->options[k - N_COMMON];
        if (long_name ? strlen(o->name) == len && strncmp(o->name, long_name, len) == 0
                      : o->short_name == short_name)
            return k;
    }
    return -1;
}

// Fills *args from argv[2..]. Returns 0, 1 for --help, or -1 after printing an error.
static int parse_command_line(const CliCommand* c, int argc, char** argv, CliArgs* args) {
    int nc = count_options(c->options);
    if (nc > CLI_MAX_OPTIONS)
        ZS_FAIL("this is a bug in zsseg: raise CLI_MAX_OPTIONS", "zsseg %s declares %d options", c->name, nc);
    memset(args, 0, sizeof *args);
    args->command = c;
    args->sets = (const char**)callocCheck((size_t)argc, sizeof(char*));
    int only_positionals = 0;
    for (int i = 2; i < argc; i++) {
        const char* a = argv[i];
        if (only_positionals || a[0] != '-' || a[1] == '\0') {
            if (args->npositionals >= c->max_positionals || args->npositionals >= CLI_MAX_POSITIONALS) {
                fprintf(stderr, "zsseg %s: unexpected argument '%s' (see zsseg %s --help)\n",
                        c->name, a, c->name);
                return -1;
            }
            args->positionals[args->npositionals++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_positionals = 1;
            continue;
        }
        const char* value = NULL;
        int k;
        if (a[1] == '-') {  // --name, --name=value, --name value
            const char* eq = strchr(a + 2, '=');
            size_t len = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
            k = find_option(c, a + 2, len, 0);
            if (eq) value = eq + 1;
        } else {  // -x, -xVALUE, -x VALUE
            k = find_option(c, NULL, 0, a[1]);
            if (a[2]) value = a + 2;
        }
        if (k < 0) {
            fprintf(stderr, "zsseg %s: unknown option '%s' (see zsseg %s --help)\n", c->name, a,
                    c->name);
            return -1;
        }
        const CliOption* o = k < N_COMMON ? &common_options[k] : &c->options[k - N_COMMON];
        if (!o->metavar && value) {
            fprintf(stderr, "zsseg %s: option --%s takes no value\n", c->name, o->name);
            return -1;
        }
        if (o->metavar && !value) {
            if (i + 1 >= argc) {
                fprintf(stderr, "zsseg %s: option --%s needs a value: --%s %s\n", c->name,
                        o->name, o->name, o->metavar);
                return -1;
            }
            value = argv[++i];
        }
        if (strcmp(o->name, "help") == 0) return 1;
        if (strcmp(o->name, "config") == 0) args->config_path = value;
        else if (strcmp(o->name, "set") == 0) args->sets[args->nsets++] = value;
        else args->values[k - N_COMMON] = value ? value : "";
    }
    return 0;
}

int cli_main(int argc, char** argv, const CliCommand* commands, int ncommands) {
    if (argc < 2) {
        print_usage(stderr, commands, ncommands);
        return CLI_EXIT_USAGE;
    }
    const char* name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        print_usage(stdout, commands, ncommands);
        return 0;
    }
    if (strcmp(name, "--version") == 0) {
        printf("zsseg %s\n", ZSSEG_VERSION);
        return 0;
    }
    const CliCommand* c = NULL;
    for (int k = 0; k < ncommands; k++)
        if (strcmp(commands[k].name, name) == 0) c = &commands[k];
    if (!c) {
        fprintf(stderr, "zsseg: unknown command '%s'\n\n", name);
        print_usage(stderr, commands, ncommands);
        return CLI_EXIT_USAGE;
    }

    CliArgs args;
    int parsed = parse_command_line(c, argc, argv, &args);
    int rc = CLI_EXIT_USAGE;
    if (parsed == 1) {
        print_command_usage(stdout, c);
        rc = 0;
    } else if (parsed == 0) {
        // The config is checked before anything else, so a bad file or --set is
        // reported at once, even by commands that are not built yet.
        Config* cfg = NULL;
        char* err = config_resolve(&cfg, args.config_path, args.sets, args.nsets);
        if (err) {
            fprintf(stderr, "zsseg %s: config error:\n%s\n", c->name, err);
            free(err);
        } else if (!c->run) {
            fprintf(stderr, "zsseg %s: not yet available in this version (see the README's roadmap)\n",
                    c->name);
        } else {
            rc = c->run(&args, cfg);
        }
        config_free(cfg);
    }
    free(args.sets);
    return rc;
}
