#include "formats/jsonfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cJSON *bn_json_read_object(const char *path, long max_bytes, int *absent, bn_err *err) {
    FILE *f = fopen(path, "rb");
    *absent = !f && errno == ENOENT;
    if (!f) {
        if (!*absent) bn_errf(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    char *text = NULL;
    const char *why = NULL;
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) why = "cannot be read";
    else if (n > max_bytes) why = "is too large";
    else if (!(text = malloc((size_t)n + 1))) why = "does not fit in memory";
    else if (fread(text, 1, (size_t)n, f) != (size_t)n) why = "cannot be read";
    fclose(f);
    if (why) {
        free(text);
        bn_errf(err, "%s: %s", path, why);
        return NULL;
    }
    cJSON *j = cJSON_ParseWithLength(text, (size_t)n);
    free(text);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        bn_errf(err, "%s: not a JSON object", path);
        return NULL;
    }
    return j;
}
