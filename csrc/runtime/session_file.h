/* session_file.h: saving a session to a file and loading it back for the
 * same model (session_file.c has the format). */
#ifndef BN_SESSION_FILE_H
#define BN_SESSION_FILE_H

#include <stdint.h>

#include "runtime/session.h"

/* The model's identity: a hash of its hyperparameters, tensor shapes and a
 * sample of its weight bytes (two different trained models of one shape
 * differ; computing it reads a few KB per matrix). */
uint64_t bn_model_fingerprint(const bn_model *m);

/* Writes s to path (through path.part, renamed when complete). 0, or -1
 * with a message naming the file. */
int bn_session_save(const bn_session *s, const char *path, bn_err *err);

/* A new session of model m holding what the file holds; n_ctx 0 keeps the
 * saved context size, else it must hold the saved positions. NULL with a
 * message naming the file and the problem. */
bn_session *bn_session_load(bn_model *m, const char *path, int n_ctx, bn_err *err);

#endif
