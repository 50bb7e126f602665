/* fuzz_schema.c: the JSON Schema compiler and the grammar engine behind
 * it. The input is a schema (JSON text), then (after the first NUL byte, if
 * any) a text to read through the grammar. A schema either compiles or is
 * refused with a message; a compiled one is read byte by byte, with masks
 * checked against commit (fuzz_grammar.h). */
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "fuzz_grammar.h"
#include "grammar/json_schema.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    return fuzz_grammar_init();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    size_t sn = nul ? (size_t)(nul - data) : size;
    cJSON *schema = cJSON_ParseWithLength((const char *)data, sn);
    if (!schema) return 0;
    bn_err err = {0};
    bn_gb *gb = bn_gb_new(&fuzz_limits);
    bn_json_opts jo = {(size & 1) ? BN_JSON_WS_COMPACT : BN_JSON_WS_FLEXIBLE, (unsigned)(size % 5), (int)(size >> 3 & 1)};
    int ok = bn_json_schema_compile(gb, schema, &jo, &err);
    cJSON_Delete(schema);
    if (!ok) {
        if (!err.msg[0]) abort();
        bn_gb_free(gb);
        return 0;
    }
    fuzz_grammar_run(gb, nul ? nul + 1 : NULL, nul ? size - sn - 1 : 0);
    return 0;
}
