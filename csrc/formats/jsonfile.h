/* jsonfile.h: reading the small JSON files that sit beside model weights
 * (config.json, tokenizer.json, indexes) with cJSON. */
#ifndef BN_JSONFILE_H
#define BN_JSONFILE_H

#include <cjson/cJSON.h>

#include "base/errbuf.h"

/* Reads and parses the JSON object in path (at most max_bytes long). NULL
 * with *absent = 1 when the file does not exist; NULL with a message naming
 * the file when it cannot be read, is too large or is not a JSON object.
 * Free the result with cJSON_Delete. */
cJSON *bn_json_read_object(const char *path, long max_bytes, int *absent, bn_err *err);

#endif
