// Typed run configuration. One schema (schema.c) declares every key as
// "group.key" with its type, default, allowed range or choices and a help line.
// A Config holds a value and a source ("default", "FILE:LINE" or "--set") for
// every schema key; it is filled from defaults, then a libconfig file, then
// --set overrides, each checked against the schema.
//
// Loader functions return NULL on success or a heap-allocated error message
// (caller frees) naming the source, so tests can inspect it and the CLI can
// print it. Getters abort on keys missing from the schema: that is a bug in
// the caller, not a user error.
#ifndef ZSSEG_CONFIG_H
#define ZSSEG_CONFIG_H

// ---------------------------------------------------------------- schema
typedef enum {
    CFG_INT,
    CFG_FLOAT,        // ints are accepted where floats are expected (5 -> 5.0)
    CFG_BOOL,
    CFG_STRING,
    CFG_CHOICE,       // a string among `choices`
    CFG_INT_LIST,
    CFG_FLOAT_LIST,
    CFG_STRING_LIST,  // elements among `choices` when choices is set
} CfgType;

// Range flags: which ends of [min, max] are open.
#define CFG_OPEN_MIN 1
#define CFG_OPEN_MAX 2

typedef struct {
    const char* key;      // "group.key"
    CfgType type;
    const char* def;      // default, written as a --set value: "368", "0.5,1.5", "step1,mixed"
    double min, max;      // allowed range of every number (ints, floats, list elements)
    int open;             // CFG_OPEN_MIN / CFG_OPEN_MAX bits
    int len;              // lists: exact element count, 0 = any
    const char* choices;  // "a|b|c" for CFG_CHOICE, and optionally CFG_STRING_LIST elements
    const char* help;     // one line, shown by `zsseg config --reference`
} CfgSpec;

typedef struct {
    const char* name;  // "data"
    const char* help;  // one line describing the group
} CfgGroup;

// Defined in schema.c. Keys are listed group by group, groups in cfg_groups order.
extern const CfgSpec cfg_schema[];
extern const int cfg_schema_count;
extern const CfgGroup cfg_groups[];
extern const int cfg_group_count;

// Index of `key` in cfg_schema, or -1.
int config_schema_find(const char* key);

// ---------------------------------------------------------------- loading
typedef struct Config Config;

// A config holding every default.
Config* config_new(void);
void config_free(Config* cfg);

// Apply a libconfig file (groups of keys) on top of the current values.
char* config_load_file(Config* cfg, const char* path);
// Same for text held in memory; `name` stands for the file name in messages and sources.
char* config_load_string(Config* cfg, const char* text, const char* name);
// Apply one "group.key=value" override. The value is parsed by the key's type;
// lists as comma-separated elements or in libconfig syntax ([1, 2] or ("a", "b")).
char* config_apply_set(Config* cfg, const char* assignment);
// Checks that involve several keys (paired list lengths, ordered ranges).
char* config_validate(const Config* cfg);
// The usual sequence: defaults, then `path` (if non-NULL), then each --set,
// then config_validate. *out is NULL on error.
char* config_resolve(Config** out, const char* path, const char* const* sets, int nsets);

// ---------------------------------------------------------------- reading values
// Each getter checks that the key exists and has the getter's type.
int config_get_int(const Config* cfg, const char* key);
double config_get_float(const Config* cfg, const char* key);
int config_get_bool(const Config* cfg, const char* key);
const char* config_get_string(const Config* cfg, const char* key);  // CFG_STRING or CFG_CHOICE
// Lists: pointer to the elements (owned by cfg), element count in *n.
const int* config_get_int_list(const Config* cfg, const char* key, int* n);
const double* config_get_float_list(const Config* cfg, const char* key, int* n);
const char* const* config_get_string_list(const Config* cfg, const char* key, int* n);
// True when a string/choice key or a string-list element equals `value`.
int config_is(const Config* cfg, const char* key, const char* value);
// Where the value came from: "default", "FILE:LINE" or "--set".
const char* config_source(const Config* cfg, const char* key);

// ---------------------------------------------------------------- output
// Every key as libconfig text, one group per block, a trailing comment per key
// with its source. Loading it back gives the same values. Caller frees.
char* config_resolved_text(const Config* cfg);
// Markdown reference of the schema (key, type, default, range/choices, help),
// one table per group. Caller frees.
char* config_reference_markdown(void);

// Keys whose values differ between a and b, except keys starting with one of
// the `allowed` prefixes (NULL-terminated, e.g. "log.", "schedule.step1_iters"):
// NULL when none, else a heap text with one "  key: A -> B" line per key.
char* config_diff(const Config* a, const Config* b, const char* const* allowed);

#endif  // ZSSEG_CONFIG_H
