/*
 * json: a small JSON reader for the tests (Prometheus API replies, the
 * Grafana dashboard). Parses a whole document into a tree of nodes; no
 * writer, no streaming. Strings are unescaped into NUL-terminated UTF-8
 * (\uXXXX and surrogate pairs included); numbers are doubles.
 *
 * Thread-safety: a tree is owned by its caller; distinct trees may be used
 * from distinct threads.
 */
#ifndef RIVEN_JSON_H
#define RIVEN_JSON_H

#include <stddef.h>

enum json_type {
    JSON_NULL,
    JSON_BOOL,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT,
};

struct json {
    enum json_type type;
    char *key;          /* member name inside an object, else NULL; owned */
    char *str;          /* JSON_STRING: the unescaped text; owned */
    double num;         /* JSON_NUMBER; JSON_BOOL: 0 or 1 */
    struct json *child; /* first element or member; owned */
    struct json *next;  /* next sibling; owned by the parent's list */
};

/* Parse len bytes of text (one value, whitespace around it allowed; at
 * most 128 levels deep). The tree, to free with json_free, or NULL with a
 * message naming the byte offset in err. */
struct json *json_parse(const char *text, size_t len, char *err, size_t errlen);

/* Free a tree. NULL-safe. */
void json_free(struct json *j);

/* The member key of object obj, or NULL (obj NULL or not an object, or no
 * such member). The pointer stays valid while the tree lives. */
const struct json *json_get(const struct json *obj, const char *key);

/* The string of member key of obj, or NULL when absent or not a string. */
const char *json_get_str(const struct json *obj, const char *key);

/* Elements of an array, or members of an object; 0 for anything else. */
size_t json_count(const struct json *j);

#endif /* RIVEN_JSON_H */
