// Text-level checks of the config module (config.c only).
// libconfig 1.5 keeps an unsuffixed integer literal in an int and wraps what
// does not fit, silently (batch_size = 4294967306 reads as 10, 0x1FFFFFFFF as
// -1): the literals of a setting's value are read again from its source text.
#ifndef ZSSEG_CONFIG_LITERAL_H
#define ZSSEG_CONFIG_LITERAL_H

#include <libconfig.h>

// Source text of the file settings come from: the in-memory text, or the file
// (read once per load; @include switches files).
typedef struct {
    const char* mem;  // config_load_string's text (settings with no source file), else NULL
    char* file;
    char* text;
} ConfigSrcText;

const char* config_src_text(ConfigSrcText* st, const config_setting_t* s, const char* file);
void config_src_text_free(ConfigSrcText* st);
// Whether libconfig holds s (or an element of it) as a plain int.
int config_setting_holds_int(const config_setting_t* s);
// The first integer literal of the value of `name` (on line `line` of text)
// that does not fit an int: its start, length in *len; NULL if none. Floats,
// strings and L-suffixed (64-bit) literals are passed over; lists may span lines.
const char* config_wide_literal(const char* text, int line, const char* name, int* len);

// run.out_dir as a system directory or $HOME itself (as written, repeated and
// trailing slashes dropped, and resolved when it exists).
int config_dir_is_system(const char* dir);

#endif  // ZSSEG_CONFIG_LITERAL_H
