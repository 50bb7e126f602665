/* fuzz_gbnf.c: the GBNF parser and the grammar engine behind it. The input
 * is a grammar text, then (after the first NUL byte, if any) a text to
 * read through it. A grammar either compiles or is refused with a message;
 * a compiled one is read byte by byte, with a mask at every step and the
 * mask checked against commit for a few tokens. The vocabulary is the
 * shipped model's (built once, read-only). */
#include <stdlib.h>

#include "fuzz_grammar.h"
#include "grammar/gbnf.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    return fuzz_grammar_init();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    size_t gn = nul ? (size_t)(nul - data) : size;
    bn_err err = {0};
    bn_gb *gb = bn_gb_new(&fuzz_limits);
    if (!bn_gbnf_parse(gb, (const char *)data, gn, NULL, &err)) {
        if (!err.msg[0]) abort(); /* a refusal must say why */
        bn_gb_free(gb);
        return 0;
    }
    fuzz_grammar_run(gb, nul ? nul + 1 : NULL, nul ? size - gn - 1 : 0);
    return 0;
}
