// Command-line front end: `zsseg <command> [options]`. Parses the options every
// command shares (-c CFG, --set group.key=value, --help) and each command's own,
// prints usage, resolves the config, then runs the command's handler.
// Exit codes: 0 success, 1 a command failed, 2 usage or config error.
#ifndef ZSSEG_CLI_H
#define ZSSEG_CLI_H

#include "config.h"

#define CLI_EXIT_USAGE 2
#define CLI_MAX_OPTIONS 16      // command-specific options per command
#define CLI_MAX_POSITIONALS 16

typedef struct {
    const char* name;     // long name without "--": "resume"
    char short_name;      // 'r', or 0 for none
    const char* metavar;  // value placeholder ("auto|PATH"), NULL for a flag
    const char* help;     // one line
} CliOption;

typedef struct CliCommand CliCommand;

typedef struct {
    const CliCommand* command;
    const char* config_path;                 // -c/--config FILE, or NULL (defaults only)
    const char** sets;                       // --set values, in command-line order
    int nsets;
    const char* values[CLI_MAX_OPTIONS];     // per command option: its value, "" for a given flag, NULL if absent
    const char* positionals[CLI_MAX_POSITIONALS];
    int npositionals;
} CliArgs;

// A command's body, run after the config resolved cleanly. Returns the exit code.
typedef int (*CliRun)(const CliArgs* args, const Config* cfg);

struct CliCommand {
    const char* name;         // "train"
    const char* summary;      // one line for `zsseg --help`
    const char* description;  // a paragraph for `zsseg NAME --help`
    const char* positionals;  // usage of positional arguments ("info|verify CKPT"), NULL if none
    int max_positionals;
    const CliOption* options; // command-specific options, ending with {0}; may be NULL
    CliRun run;               // NULL: not yet available in this version
};

// Value of a command-specific option: NULL if not given, "" for a given flag.
const char* cli_option(const CliArgs* args, const char* name);

// Parse argv, dispatch to one of `commands`, return the process exit code.
int cli_main(int argc, char** argv, const CliCommand* commands, int ncommands);

#endif  // ZSSEG_CLI_H
