/* json_schema.h: JSON Schema (draft 2020-12 and the drafts 4-7 people
 * still write) and "any JSON value" into a grammar builder, for
 * structured output.
 *
 * The text the grammar accepts is exactly the JSON texts that validate
 * against the schema, up to the choices every structured-output engine
 * makes: properties appear in the order the schema lists them (additional
 * properties, where allowed, may appear between them), and strings under
 * `pattern`, `format`, `enum` or `const` are spelled as json.dumps
 * (ensure_ascii=False) spells them. A keyword the grammar cannot enforce
 * makes compilation fail naming the keyword and its JSON pointer: a
 * grammar never accepts text that breaks the schema. Keywords that do not
 * constrain text (title, description, examples, default, $schema, $id,
 * $comment, deprecated, readOnly, ... and vendor extensions) are ignored,
 * and so is a `format` the engine does not know (formats are annotations
 * unless a validator knows them). */
#ifndef BN_GRAMMAR_JSON_SCHEMA_H
#define BN_GRAMMAR_JSON_SCHEMA_H

#include <cjson/cJSON.h>

#include "base/errbuf.h"
#include "grammar/gbuild.h"

typedef enum {
    BN_JSON_WS_FLEXIBLE = 0, /* whitespace between tokens as JSON allows (none after the value) */
    BN_JSON_WS_COMPACT = 1   /* none: {"a":1,"b":[2,3]} */
} bn_json_ws;

typedef struct {
    bn_json_ws whitespace;
    /* The most whitespace characters between two tokens in flexible mode
     * (0: unbounded); bounds how long a model can stall in whitespace. */
    unsigned max_whitespace;
    /* OpenAPI 3.0's "nullable": true beside "type" also allows null. Off:
     * JSON Schema has no such keyword and its validators ignore it. */
    int openapi_nullable;
} bn_json_opts;

/* Compiles schema (a parsed JSON value: an object, or true/false) into gb
 * (a fresh builder) and sets its start rule. Returns 1, or 0 with a
 * message such as "unsupported keyword 'uniqueItems' at /properties/tags"
 * or "$ref '#/$defs/x' at /items points nowhere". */
int bn_json_schema_compile(bn_gb *gb, const cJSON *schema, const bn_json_opts *opts, bn_err *err);

/* Any JSON value (JSON mode): sets gb's start rule. Objects only when
 * object_only (OpenAI's json_object mode). */
int bn_json_any_compile(bn_gb *gb, int object_only, const bn_json_opts *opts, bn_err *err);

#endif
