/* gguf_writer_test.c: writes GGUF files with every metadata type, string
 * arrays, a copied key, odd tensor sizes and a non-default alignment, and
 * reads them back with the project's validating reader (gguf.c); checks the
 * writer's refusals. Exit status 0 when every check passes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/gguf.h"
#include "formats/gguf_writer.h"

static int failures;

#define CHECK(cond)                                                               \
    do {                                                                          \
        if (!(cond)) {                                                            \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                           \
        }                                                                         \
    } while (0)

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc((size_t)len);
    if (p && fread(p, 1, (size_t)len, f) != (size_t)len) {
        free(p);
        p = NULL;
    }
    fclose(f);
    *n = (size_t)len;
    return p;
}

/* Writes a file with alignment `align` and checks it reads back. */
static void roundtrip(uint32_t align, const char *path) {
    bn_err err = {0};
    bn_gguf_writer *w = bn_gw_new(align);
    CHECK(w != NULL);
    uint8_t u8 = 200;
    int16_t i16 = -12345;
    double f64 = 3.25;
    int64_t i64 = -(1LL << 40);
    CHECK(bn_gw_set_str(w, "general.architecture", "bitnet", &err));
    CHECK(bn_gw_set_u32(w, "t.u32", 4000000000u, &err));
    CHECK(bn_gw_set_i32(w, "t.i32", -7, &err));
    CHECK(bn_gw_set_u64(w, "t.u64", 1ULL << 50, &err));
    CHECK(bn_gw_set_f32(w, "t.f32", 0.5f, &err));
    CHECK(bn_gw_set_bool(w, "t.bool", 1, &err));
    CHECK(bn_gw_set_scalar(w, "t.u8", GGUF_T_U8, &u8, &err));
    CHECK(bn_gw_set_scalar(w, "t.i16", GGUF_T_I16, &i16, &err));
    CHECK(bn_gw_set_scalar(w, "t.f64", GGUF_T_F64, &f64, &err));
    CHECK(bn_gw_set_scalar(w, "t.i64", GGUF_T_I64, &i64, &err));
    CHECK(bn_gw_set_strn(w, "t.bytes", "a\0b", 3, &err));
    const char *strs[] = {"one", "", "three"};
    CHECK(bn_gw_set_str_array(w, "t.strs", strs, NULL, 3, &err));
    float fs[3] = {1.5f, -2.0f, 0.0f};
    CHECK(bn_gw_set_array(w, "t.f32s", GGUF_T_F32, fs, 3, &err));
    CHECK(bn_gw_set_array(w, "t.empty", GGUF_T_I32, NULL, 0, &err));
    /* refusals */
    bn_err e2 = {0};
    CHECK(!bn_gw_set_u32(w, "t.u32", 1, &e2) && strstr(e2.msg, "set twice"));
    bn_err e3 = {0};
    CHECK(!bn_gw_set_scalar(w, "t.bad", GGUF_T_STRING, "x", &e3) && strstr(e3.msg, "not a numeric scalar"));
    uint64_t ne_a[2] = {3, 5}, ne_b[1] = {7}, ne_c[1] = {1};
    CHECK(bn_gw_add_tensor(w, "a", GGML_F32, 2, ne_a, 60, &err));
    CHECK(bn_gw_add_tensor(w, "b", GGML_F16, 1, ne_b, 14, &err));
    CHECK(bn_gw_add_tensor(w, "c", GGML_F32, 1, ne_c, 4, &err));
    bn_err e4 = {0};
    CHECK(!bn_gw_add_tensor(w, "a", GGML_F32, 1, ne_c, 4, &e4) && strstr(e4.msg, "added twice"));
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    CHECK(bn_gw_begin(w, f, path, &err));
    bn_err e5 = {0};
    CHECK(!bn_gw_set_u32(w, "late", 1, &e5) && strstr(e5.msg, "after the header"));
    float a[15];
    for (int i = 0; i < 15; i++) a[i] = (float)i;
    CHECK(bn_gw_write(w, a, 20, &err)); /* in pieces */
    CHECK(bn_gw_write(w, (uint8_t *)a + 20, 40, &err));
    uint8_t b[14];
    for (int i = 0; i < 14; i++) b[i] = (uint8_t)(i + 1);
    float c = 9.0f;
    uint8_t bc[18];
    memcpy(bc, b, 14);
    memcpy(bc + 14, &c, 4);
    CHECK(bn_gw_write(w, bc, 18, &err)); /* across the boundary of b and c */
    bn_err e6 = {0};
    CHECK(!bn_gw_write(w, &c, 1, &e6) && strstr(e6.msg, "more tensor data than declared"));
    CHECK(bn_gw_finish(w, &err));
    fclose(f);
    bn_gw_free(w);
    if (err.msg[0]) fprintf(stderr, "unexpected error: %s\n", err.msg);

    size_t n;
    unsigned char *data = slurp(path, &n);
    CHECK(data != NULL);
    if (!data) return;
    bn_gguf g;
    bn_err perr = {0};
    int ok = bn_gguf_parse(&g, data, n, path, &perr);
    CHECK(ok);
    if (!ok) {
        fprintf(stderr, "parse: %s\n", perr.msg);
        free(data);
        return;
    }
    CHECK(g.version == 3);
    CHECK(g.alignment == (align ? align : 32));
    int64_t iv;
    double dv;
    int bv;
    bn_str sv;
    CHECK(bn_gguf_get_int(&g, "t.u32", &iv) == 1 && iv == 4000000000LL);
    CHECK(bn_gguf_get_int(&g, "t.i32", &iv) == 1 && iv == -7);
    CHECK(bn_gguf_get_int(&g, "t.u64", &iv) == 1 && iv == 1LL << 50);
    CHECK(bn_gguf_get_int(&g, "t.u8", &iv) == 1 && iv == 200);
    CHECK(bn_gguf_get_int(&g, "t.i16", &iv) == 1 && iv == -12345);
    CHECK(bn_gguf_get_int(&g, "t.i64", &iv) == 1 && iv == -(1LL << 40));
    CHECK(bn_gguf_get_float(&g, "t.f32", &dv) == 1 && dv == 0.5);
    CHECK(bn_gguf_get_float(&g, "t.f64", &dv) == 1 && dv == 3.25);
    CHECK(bn_gguf_get_bool(&g, "t.bool", &bv) == 1 && bv == 1);
    CHECK(bn_gguf_get_str(&g, "t.bytes", &sv) == 1 && sv.len == 3 && memcmp(sv.ptr, "a\0b", 3) == 0);
    const bn_gguf_kv *kv = bn_gguf_find(&g, "t.strs");
    bn_str out[3];
    CHECK(kv && kv->count == 3 && bn_gguf_arr_str(&g, kv, out) && bn_str_eq(out[0], "one") && out[1].len == 0 &&
          bn_str_eq(out[2], "three"));
    kv = bn_gguf_find(&g, "t.f32s");
    float fo[3];
    CHECK(kv && kv->count == 3 && bn_gguf_arr_f32(&g, kv, fo) && fo[0] == 1.5f && fo[1] == -2.0f);
    kv = bn_gguf_find(&g, "t.empty");
    CHECK(kv && kv->count == 0);
    const bn_gguf_tensor *ta = bn_gguf_tensor_find(&g, "a"), *tb = bn_gguf_tensor_find(&g, "b"),
                         *tc = bn_gguf_tensor_find(&g, "c");
    CHECK(ta && tb && tc);
    if (ta && tb && tc) {
        uint32_t al = align ? align : 32;
        CHECK(ta->ne[0] == 3 && ta->ne[1] == 5 && ta->n_dims == 2);
        CHECK(memcmp(g.data + ta->offset, a, 60) == 0);
        CHECK(memcmp(g.data + tb->offset, b, 14) == 0);
        CHECK(memcmp(g.data + tc->offset, &c, 4) == 0);
        CHECK(ta->offset % al == 0 && tb->offset % al == 0 && tc->offset % al == 0);
    }
    /* copying every key into a second file gives the same bytes for each */
    bn_gguf_writer *w2 = bn_gw_new(0);
    for (uint64_t i = 0; i < g.n_kv; i++)
        if (!bn_str_eq(g.kv[i].key, "general.alignment")) CHECK(bn_gw_copy_kv(w2, &g, &g.kv[i], &err));
    char path2[256];
    snprintf(path2, sizeof path2, "%s.copy", path);
    FILE *f2 = fopen(path2, "wb");
    CHECK(f2 && bn_gw_begin(w2, f2, path2, &err) && bn_gw_finish(w2, &err));
    if (f2) fclose(f2);
    bn_gw_free(w2);
    size_t n2;
    unsigned char *d2 = slurp(path2, &n2);
    bn_gguf g2;
    CHECK(d2 && bn_gguf_parse(&g2, d2, n2, path2, &perr));
    if (d2) {
        const bn_gguf_kv *k1 = bn_gguf_find(&g, "t.strs"), *k2 = bn_gguf_find(&g2, "t.strs");
        CHECK(k1 && k2 && k2->count == 3 && memcmp(g.data + k1->pos, g2.data + k2->pos, 8 + 3 + 8 + 0 + 8 + 5) == 0);
        CHECK(bn_gguf_get_int(&g2, "t.i64", &iv) == 1 && iv == -(1LL << 40));
        bn_gguf_free(&g2);
    }
    free(d2);
    remove(path2);
    bn_gguf_free(&g);
    free(data);
}

static void incomplete(const char *path) {
    bn_err err = {0};
    bn_gguf_writer *w = bn_gw_new(32);
    uint64_t ne[1] = {4};
    CHECK(bn_gw_add_tensor(w, "x", GGML_F32, 1, ne, 16, &err));
    FILE *f = fopen(path, "wb");
    CHECK(bn_gw_begin(w, f, path, &err));
    CHECK(bn_gw_write(w, "abcd", 4, &err));
    bn_err e = {0};
    CHECK(!bn_gw_finish(w, &e) && strstr(e.msg, "tensor 'x' is missing 12 bytes of data"));
    fclose(f);
    bn_gw_free(w);
    CHECK(bn_gw_new(24) == NULL); /* not a power of two */
}

int main(void) {
    char path[] = "/tmp/bn_gguf_writer_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return 2;
    close(fd);
    roundtrip(0, path);
    roundtrip(64, path);
    incomplete(path);
    remove(path);
    if (failures) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    printf("gguf_writer_test: all checks passed\n");
    return 0;
}
