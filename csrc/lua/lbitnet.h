/* lbitnet.h: shared pieces of the Lua face (bitnet.core). The binding holds
 * no logic beyond argument checking and object lifetime. */
#ifndef BN_LBITNET_H
#define BN_LBITNET_H

#include "lua/compat.h"
#include "model/model.h"
#include "runtime/session.h"
#include "tokenizer/tokenizer.h"

struct bn_grammar;
struct bn_matcher;

#define BN_MODEL_MT "bitnet.Model"
#define BN_SESSION_MT "bitnet.Session"
#define BN_SAMPLER_MT "bitnet.Sampler"
#define BN_JOB_MT "bitnet.Job"
#define BN_GRAMMAR_MT "bitnet.Grammar"
#define BN_MATCHER_MT "bitnet.Matcher"

typedef struct { bn_model *m; } bn_lmodel;
typedef struct { bn_session *s; } bn_lsession;

/* Raises an error naming the first key of the options table at idx that is
 * not in `allowed` (NULL-terminated). A nil or absent table is accepted. */
void bn_check_options(lua_State *L, int idx, const char *fname, const char *const *allowed);
/* Option readers: absent/nil gives def; a wrong type raises naming the key. */
lua_Integer bn_opt_integer(lua_State *L, int idx, const char *key, lua_Integer def, const char *fname);
const char *bn_opt_string(lua_State *L, int idx, const char *key, const char *def, const char *fname);
int bn_opt_boolean(lua_State *L, int idx, const char *key, int def, const char *fname);

/* Returns the model of the Model userdata at idx (raises if not one). */
bn_model *bn_check_model(lua_State *L, int idx);
/* Returns the open session at idx (raises if not a Session or closed). */
bn_session *bn_check_session(lua_State *L, int idx);
/* The same, claimed for this caller (bn_session_unclaim when done); raises
 * "session in use" while an async generation or another thread holds it. */
bn_session *bn_claim_session(lua_State *L, int idx);

/* The tokenizer of the Tokenizer or Model userdata at idx (raises naming
 * fname when it is neither, or the model has no tokenizer). */
const bn_tokenizer *bn_check_tokenizer_of(lua_State *L, int idx, const char *fname);
/* The grammar / matcher of the userdata at idx (raises if not one or closed). */
struct bn_grammar *bn_check_grammar(lua_State *L, int idx);
struct bn_matcher *bn_check_matcher(lua_State *L, int idx);

/* Returns the sampler of the Sampler userdata at idx (raises if not one). */
struct bn_sampler *bn_check_sampler(lua_State *L, int idx);
/* Pushes a logprobs record (runtime/sampler.h) as { id, logprob, top =
 * { { id, logprob }, ... } } (top absent when n_top < 0). */
void bn_push_logprobs(lua_State *L, const void *record);

/* Registers a userdata class on the module table at the top of the stack:
 * the metatable `name` (__gc and __close = close, __tostring, __name,
 * __index = the methods table), and module[field] = the methods when field
 * is not NULL (for the Lua layer to extend). Leaves the stack as it was. */
void bn_open_class(lua_State *L, const char *name, const char *field, const luaL_Reg *methods, lua_CFunction close,
                   lua_CFunction tostring);

/* Pushes a new Model userdata that owns one reference to m. */
void bn_push_model(lua_State *L, bn_model *m);

void bn_open_model(lua_State *L);    /* leaves nothing on the stack */
void bn_open_session(lua_State *L);
void bn_open_sampler(lua_State *L);  /* bitnet.Sampler and module.sampler(opts) */
void bn_open_tokenizer(lua_State *L); /* bitnet.Tokenizer/Decoder, module.tokenizer(path), model:tokenize... */
void bn_open_convert(lua_State *L);  /* module.convert(src, dst [, opts]) */
void bn_open_job(lua_State *L);      /* bitnet.Job and module.job(...): the background engine */
void bn_open_grammar(lua_State *L);  /* bitnet.Grammar/Matcher and module.grammar(spec, tok) */
void bn_open_hub(lua_State *L);      /* module.http/fetch/lock/fs_*: what `bitnet pull` is built from */
void bn_open_json(lua_State *L);     /* module.json_decode(text) */
void bn_open_term(lua_State *L);     /* module.term: line editing and Ctrl-C for `bitnet repl` */

#endif
