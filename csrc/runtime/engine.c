/* engine.c: the background engine (engine.h). One thread per model; jobs
 * in arrival order; each step plans rows under the lock, runs the pass and
 * the samplers without it, then publishes what each job produced. */
#include "runtime/engine.h"

#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/eventfd.h>
#endif

#include "base/threadpool.h"
#include "tokenizer/tokenizer.h"

/* Prompt tokens a job evaluates per step at most: how long a new prompt may
 * hold up the streams already running (the same chunk as gen:step()). */
#define PREFILL_CHUNK 64
#define MAX_DRAFT 16

typedef struct bn_engine {
    bn_model *model;              /* borrowed: the model stops the engine before it goes */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake, news;    /* work for the engine; news for waiting hosts */
    int stop;
    bn_job **jobs;                /* attached jobs, in arrival order */
    int n_jobs, cap_jobs;
    bn_work *work;                /* touched by the engine thread only */
} bn_engine;

struct bn_job {
    bn_engine *e;
    bn_session *s;
    bn_sampler *smp;
    bn_job_opts o;
    atomic_int cancel;
    /* under e->lock */
    int attached;                 /* in e->jobs: the engine may use it */
    int32_t *tokens;              /* produced tokens */
    bn_logprobs *lps;             /* their logprobs records (o.logprobs >= 0), cap_tokens of them */
    int n_tokens, cap_tokens, n_polled;
    bn_job_status st;
    int fd, fd_write;             /* news descriptor(s), -1 until asked for */
    /* the engine thread's own */
    int32_t *prompt;
    int n_prompt, fed;            /* prompt[fed..n_prompt) not evaluated yet */
    int pending;                  /* the last sampled token, to feed; -1 none */
    int n_draft;                  /* drafts in the current step */
    int32_t draft[MAX_DRAFT];
    float *spec_logits;           /* (o.n_draft + 1) rows of n_vocab */
    int32_t fresh[MAX_DRAFT + 1]; /* tokens produced by the current step */
    bn_logprobs fresh_lp[MAX_DRAFT + 1];
    int n_fresh;
    bn_logprobs *prompt_lp;       /* o.prompt_logprobs: one record per prompt token */
    float *chunk_logits;          /* prompt_logprobs: PREFILL_CHUNK rows of n_vocab */
    float *hidden;                /* pooling: PREFILL_CHUNK rows of n_embd */
    double *pooled;               /* pooling: n_embd sums (mean) or the last row */
    bn_job_end fresh_end;
    char fresh_error[sizeof(((bn_job_status *)0)->error)];
    int fresh_error_input;
    bn_job_status run;            /* the figures as the engine counts them; published into st */
    double t_decode0;
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void signal_fd(bn_job *j) {
    if (j->fd_write < 0) return;
    uint64_t one = 1;
    ssize_t r = write(j->fd_write, &one, j->fd_write == j->fd ? sizeof one : 1);
    (void)r; /* full: already readable, which is all it has to say */
}

static void detach(bn_engine *e, int i) {
    e->jobs[i]->attached = 0;
    memmove(e->jobs + i, e->jobs + i + 1, sizeof *e->jobs * (size_t)(e->n_jobs - i - 1));
    e->n_jobs--;
}

/* ---- one job's token choices (engine thread) ---- */

/* Ends the job's step with `end` (the first end wins). */
static void end_job(bn_job *j, bn_job_end end, const char *msg) {
    if (j->fresh_end != BN_JOB_RUNNING) return;
    j->fresh_end = end;
    if (msg) snprintf(j->fresh_error, sizeof j->fresh_error, "%s", msg);
    j->fresh_error_input = 0;
}

/* Ends the job's step with an error from err, keeping whose fault it was. */
static void end_job_err(bn_job *j, const bn_err *err) {
    if (j->fresh_end != BN_JOB_RUNNING) return;
    end_job(j, BN_JOB_ERROR, err->msg);
    j->fresh_error_input = err->input;
}

/* With context_shift, makes room when the context is full: keeps `keep`
 * positions and drops half of the rest. 0 when it does not (off, or no
 * room to drop). */
static int shift_context(bn_job *j) {
    bn_session *s = j->s;
    int n = (s->pos - j->o.keep) / 2;
    if (!j->o.context_shift || n < 1) return 0;
    return bn_session_shift(s, j->o.keep, n) == 0;
}

/* Chooses the next token from logits, as the synchronous loop does: the
 * length check first, then the sampler, the end-of-generation check, and
 * the context check. Returns the token kept, or -1 when the job ended. */
static int32_t choose(bn_job *j, const float *logits) {
    const bn_model *m = j->s->model;
    if (j->n_tokens + j->n_fresh >= j->o.max_tokens) {
        end_job(j, BN_JOB_LENGTH, NULL);
        return -1;
    }
    bn_err err = {0};
    int32_t id = bn_sampler_sample(j->smp, logits, m->hp.n_vocab, &err);
    if (id < 0) {
        end_job_err(j, &err);
        return -1;
    }
    j->run.n_sampled++;
    if (j->o.logprobs >= 0) {
        const bn_logprobs *lp = bn_sampler_last_logprobs(j->smp);
        if (lp) j->fresh_lp[j->n_fresh] = *lp;
        else j->fresh_lp[j->n_fresh] = (bn_logprobs){.id = id};
    }
    bn_sampler_accept(j->smp, id);
    if (!bn_sampler_grammar_commit(j->smp, id, &err)) {
        end_job_err(j, &err);
        return -1;
    }
    if (m->tokenizer && bn_tokenizer_is_eog(m->tokenizer, id)) {
        end_job(j, BN_JOB_STOP, NULL);
        return -1;
    }
    j->fresh[j->n_fresh++] = id;
    j->pending = id;
    if (j->n_tokens + j->n_fresh >= j->o.max_tokens) end_job(j, BN_JOB_LENGTH, NULL);
    else if (j->s->pos >= j->s->n_ctx && !shift_context(j)) end_job(j, BN_JOB_LENGTH, NULL);
    return id;
}

/* Prompt lookup: the tokens that followed the latest earlier occurrence of
 * the text's last n tokens (n from ngram down to 1); at most max of them. */
static int find_draft(const bn_job *j, int32_t *draft, int max) {
    const int32_t *h = j->s->tokens;
    int len = j->s->pos; /* h[0..len) is held; the pending token follows */
    for (int n = j->o.ngram; n >= 1; n--) {
        if (len + 1 < n + 1) continue;
        /* the suffix is h[len-n+1..len) + pending */
        for (int at = len - 1; at >= n - 1; at--) { /* candidate end: h[at] matches pending */
            if (h[at] != j->pending) continue;
            int k = 1;
            while (k < n && h[at - k] == h[len - k]) k++;
            if (k < n) continue;
            int got = 0;
            for (int p = at + 1; p < len && got < max; p++) draft[got++] = h[p];
            if (got > 0) return got;
        }
    }
    return 0;
}

/* ---- the engine thread ---- */

typedef struct {
    bn_job *job;
    int first, n;    /* its rows in the pass */
    int prefill;     /* prompt rows (else the pending token and drafts) */
} plan_entry;

/* Rows for this step: every decoding job's pending token (and drafts),
 * then prompt chunks in arrival order, as many as fit. Under the lock. */
static int plan_step(bn_engine *e, bn_row *rows, plan_entry *plan, int *n_plan) {
    int n = 0, np = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < e->n_jobs && n < BN_CHUNK; i++) {
            bn_job *j = e->jobs[i];
            bn_session *s = j->s;
            int decoding = j->fed == j->n_prompt;
            if (decoding != (pass == 0)) continue;
            plan_entry *pe = &plan[np++];
            pe->job = j;
            pe->first = n;
            pe->prefill = !decoding;
            if (decoding) {
                int room = BN_CHUNK - n - 1, left = j->o.max_tokens - j->n_tokens - 1;
                int max = j->o.n_draft < room ? j->o.n_draft : room;
                if (max > left) max = left;
                if (max > s->n_ctx - s->pos - 1) max = s->n_ctx - s->pos - 1;
                j->n_draft = max > 0 && j->o.ngram > 0 ? find_draft(j, j->draft, max) : 0;
                float *out = j->spec_logits ? j->spec_logits : s->logits;
                rows[n++] = (bn_row){s, j->pending, s->pos, out, NULL};
                for (int d = 0; d < j->n_draft; d++, n++)
                    rows[n] = (bn_row){s, j->draft[d], s->pos + 1 + d, out + (int64_t)(d + 1) * s->model->hp.n_vocab, NULL};
            } else {
                int c = j->n_prompt - j->fed;
                if (c > PREFILL_CHUNK) c = PREFILL_CHUNK;
                if (c > BN_CHUNK - n) c = BN_CHUNK - n;
                int64_t V = s->model->hp.n_vocab, E = s->model->hp.n_embd;
                for (int t = 0; t < c; t++) {
                    rows[n + t] = (bn_row){s, j->prompt[j->fed + t], s->pos + t, NULL, NULL};
                    if (j->chunk_logits) rows[n + t].logits = j->chunk_logits + t * V;
                    if (j->hidden) rows[n + t].hidden = j->hidden + t * E;
                }
                if (j->fed + c == j->n_prompt && !j->chunk_logits && !j->o.pooling) rows[n + c - 1].logits = s->logits;
                n += c;
            }
            pe->n = n - pe->first;
        }
    *n_plan = np;
    return n;
}

/* After a prompt chunk of c rows at j->fed: the prompt's logprobs (each
 * row's logits weigh the next prompt token) and the pooled hidden state. */
static void prompt_outputs(bn_job *j, int c) {
    const bn_hparams *hp = &j->s->model->hp;
    int64_t V = hp->n_vocab, E = hp->n_embd;
    if (j->chunk_logits) {
        if (j->fed == 0) j->prompt_lp[0] = (bn_logprobs){.id = j->prompt[0], .n_top = -1};
        for (int t = 0; t < c && j->fed + t + 1 < j->n_prompt; t++)
            bn_logprobs_of_logits(j->chunk_logits + t * V, (int)V, j->prompt[j->fed + t + 1], j->o.prompt_logprobs,
                                  &j->prompt_lp[j->fed + t + 1]);
        if (j->fed + c == j->n_prompt) /* the last row's logits choose the first token */
            memcpy(j->s->logits, j->chunk_logits + (c - 1) * V, sizeof(float) * (size_t)V);
    }
    if (j->o.pooling == BN_POOL_MEAN) {
        for (int t = 0; t < c; t++)
            for (int64_t i = 0; i < E; i++) j->pooled[i] += j->hidden[t * E + i];
    } else if (j->o.pooling == BN_POOL_LAST) {
        for (int64_t i = 0; i < E; i++) j->pooled[i] = j->hidden[(c - 1) * E + i];
    }
}

/* After the pass: each job records what it fed and chooses its tokens. */
static void finish_step(plan_entry *plan, int np, const bn_row *rows, double seconds) {
    for (int p = 0; p < np; p++) {
        bn_job *j = plan[p].job;
        bn_session *s = j->s;
        j->n_fresh = 0;
        if (plan[p].prefill) {
            for (int t = 0; t < plan[p].n; t++) s->tokens[s->pos + t] = rows[plan[p].first + t].id;
            prompt_outputs(j, plan[p].n);
            s->pos += plan[p].n;
            j->fed += plan[p].n;
            j->run.prompt_fed += plan[p].n;
            j->run.prefill_seconds += seconds;
            if (j->fed < j->n_prompt) continue;
            s->have_logits = !j->o.pooling;
            j->t_decode0 = now();
            choose(j, s->logits);
            continue;
        }
        int64_t V = s->model->hp.n_vocab;
        j->run.passes++;
        j->run.drafted += j->n_draft;
        /* the pending token, then each draft while the choice before it agrees */
        for (int i = 0; i <= j->n_draft; i++) {
            s->tokens[s->pos++] = i == 0 ? j->pending : j->draft[i - 1];
            const float *lg = j->spec_logits ? j->spec_logits + (int64_t)i * V : s->logits;
            if (j->spec_logits) memcpy(s->logits, lg, sizeof(float) * (size_t)V);
            s->have_logits = 1;
            int32_t id = choose(j, s->logits);
            if (id < 0 || i == j->n_draft || id != j->draft[i]) break;
            j->run.accepted++;
        }
    }
}

static void publish(bn_engine *e, plan_entry *plan, int np, double t_end) {
    for (int p = 0; p < np; p++) {
        bn_job *j = plan[p].job;
        if (j->n_fresh > 0) {
            if (j->n_tokens + j->n_fresh > j->cap_tokens) {
                int cap = j->cap_tokens ? j->cap_tokens * 2 : 64;
                while (cap < j->n_tokens + j->n_fresh) cap *= 2;
                int32_t *t = realloc(j->tokens, sizeof(int32_t) * (size_t)cap);
                if (t) j->tokens = t;
                bn_logprobs *lp = NULL;
                if (t && j->o.logprobs >= 0 && (lp = realloc(j->lps, sizeof *lp * (size_t)cap))) j->lps = lp;
                if (!t || (j->o.logprobs >= 0 && !lp)) {
                    end_job(j, BN_JOB_ERROR, "out of memory for the generated tokens");
                    j->n_fresh = 0;
                } else {
                    j->cap_tokens = cap;
                }
            }
            memcpy(j->tokens + j->n_tokens, j->fresh, sizeof(int32_t) * (size_t)j->n_fresh);
            if (j->o.logprobs >= 0)
                memcpy(j->lps + j->n_tokens, j->fresh_lp, sizeof(bn_logprobs) * (size_t)j->n_fresh);
            j->n_tokens += j->n_fresh;
        }
        if (j->t_decode0 > 0) j->run.decode_seconds = t_end - j->t_decode0;
        j->run.n_tokens = j->n_tokens;
        j->st = j->run;
        if (j->fresh_end != BN_JOB_RUNNING) {
            j->st.end = j->fresh_end;
            memcpy(j->st.error, j->fresh_error, sizeof j->st.error);
            j->st.error_input = j->fresh_error_input;
            for (int i = 0; i < e->n_jobs; i++)
                if (e->jobs[i] == j) detach(e, i);
        }
        if (j->n_fresh > 0 || j->fresh_end != BN_JOB_RUNNING) signal_fd(j);
    }
}

static void *engine_main(void *arg) {
    bn_engine *e = arg;
    bn_row rows[BN_CHUNK];
    plan_entry plan[BN_CHUNK];
    pthread_mutex_lock(&e->lock);
    for (;;) {
        for (int i = 0; i < e->n_jobs; i++) {
            bn_job *j = e->jobs[i];
            if (!atomic_load(&j->cancel)) continue;
            if (j->t_decode0 > 0) j->run.decode_seconds = now() - j->t_decode0;
            j->st = j->run;
            j->st.end = BN_JOB_CANCELLED;
            detach(e, i--);
            signal_fd(j);
            pthread_cond_broadcast(&e->news);
        }
        if (e->stop) break;
        if (e->n_jobs == 0) {
            pthread_cond_wait(&e->wake, &e->lock);
            continue;
        }
        int np, n = plan_step(e, rows, plan, &np);
        pthread_mutex_unlock(&e->lock);
        double t0 = now();
        for (int p = 0; p < np; p++) plan[p].job->fresh_end = BN_JOB_RUNNING;
        bn_forward(e->work, rows, n);
        double t1 = now();
        finish_step(plan, np, rows, t1 - t0);
        pthread_mutex_lock(&e->lock);
        publish(e, plan, np, t1);
        pthread_cond_broadcast(&e->news);
    }
    pthread_mutex_unlock(&e->lock);
    return NULL;
}

static void engine_stop(void *arg) {
    bn_engine *e = arg;
    pthread_mutex_lock(&e->lock);
    e->stop = 1;
    pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->lock);
    pthread_join(e->thread, NULL);
    pthread_cond_destroy(&e->wake);
    pthread_cond_destroy(&e->news);
    pthread_mutex_destroy(&e->lock);
    bn_work_free(e->work);
    free(e->jobs);
    free(e);
}

/* How many jobs m's engine holds (0 when it never started): a host checks
 * that a cancelled generation was let go. */
int bn_engine_jobs(bn_model *m) {
    pthread_mutex_lock(&m->engine_lock);
    bn_engine *e = m->engine;
    int n = 0;
    if (e) {
        pthread_mutex_lock(&e->lock);
        n = e->n_jobs;
        pthread_mutex_unlock(&e->lock);
    }
    pthread_mutex_unlock(&m->engine_lock);
    return n;
}

/* The model's engine, started on first use. */
static bn_engine *model_engine(bn_model *m, bn_err *err) {
    pthread_mutex_lock(&m->engine_lock);
    bn_engine *e = m->engine;
    if (e) {
        pthread_mutex_unlock(&m->engine_lock);
        return e;
    }
    e = calloc(1, sizeof *e);
    int threads = m->threads > 0 ? m->threads : bn_physical_cores();
    if (!e || !(e->work = bn_work_new(m, 256, threads, err))) {
        free(e);
        pthread_mutex_unlock(&m->engine_lock);
        bn_errf(err, "out of memory for the engine");
        return NULL;
    }
    e->model = m;
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->wake, NULL);
    pthread_cond_init(&e->news, NULL);
    if (pthread_create(&e->thread, NULL, engine_main, e) != 0) {
        pthread_cond_destroy(&e->wake);
        pthread_cond_destroy(&e->news);
        pthread_mutex_destroy(&e->lock);
        bn_work_free(e->work);
        free(e);
        pthread_mutex_unlock(&m->engine_lock);
        bn_errf(err, "cannot start the engine thread: %s", strerror(errno));
        return NULL;
    }
    m->engine = e;
    m->engine_stop = engine_stop;
    pthread_mutex_unlock(&m->engine_lock);
    return e;
}

/* ---- the host's side ---- */

bn_job *bn_job_start(bn_session *s, bn_sampler *smp, const int32_t *ids, int n, int n_prefix, const bn_job_opts *o,
                     bn_err *err) {
    bn_job *j = NULL;
    if (n_prefix < 0 || n_prefix >= n || n > s->n_ctx || s->pos != n_prefix) {
        bn_errf(err, "the prompt (%d tokens, %d held) does not fit the session (%d held, %d positions)", n, n_prefix,
                s->pos, s->n_ctx);
        goto fail;
    }
    if (o->context_shift && (o->keep < 0 || o->keep > s->n_ctx - 2)) {
        bn_errf(err, "context shift: keep (%d) must be within 0..n_ctx - 2 (%d)", o->keep, s->n_ctx - 2);
        goto fail;
    }
    if (o->n_draft < 0 || o->n_draft > MAX_DRAFT || o->ngram < 0) {
        bn_errf(err, "speculative: n_draft must be within 0..%d and ngram >= 0", MAX_DRAFT);
        goto fail;
    }
    if (o->logprobs > BN_MAX_TOP_LOGPROBS || o->prompt_logprobs > BN_MAX_TOP_LOGPROBS) {
        bn_errf(err, "logprobs: at most %d alternatives", BN_MAX_TOP_LOGPROBS);
        goto fail;
    }
    if (o->prompt_logprobs >= 0 && n_prefix != 0) {
        bn_errf(err, "prompt logprobs need the whole prompt evaluated (%d tokens held)", n_prefix);
        goto fail;
    }
    if (o->pooling < BN_POOL_NONE || o->pooling > BN_POOL_LAST || (o->pooling && (o->max_tokens != 0 || n_prefix != 0))) {
        bn_errf(err, "pooling: an embedding job feeds its whole prompt and generates nothing (max_tokens 0)");
        goto fail;
    }
    bn_engine *e = model_engine(s->model, err);
    if (!e) goto fail;
    if (!(j = calloc(1, sizeof *j))) goto oom;
    j->e = e;
    j->o = *o;
    j->fd = j->fd_write = -1;
    j->pending = -1;
    atomic_init(&j->cancel, 0);
    j->n_prompt = n - n_prefix;
    if (!(j->prompt = malloc(sizeof(int32_t) * (size_t)j->n_prompt))) goto oom;
    memcpy(j->prompt, ids + n_prefix, sizeof(int32_t) * (size_t)j->n_prompt);
    size_t V = (size_t)s->model->hp.n_vocab, E = (size_t)s->model->hp.n_embd;
    if (o->n_draft > 0 && !(j->spec_logits = malloc(sizeof(float) * (size_t)(o->n_draft + 1) * V))) goto oom;
    if (o->prompt_logprobs >= 0 && (!(j->prompt_lp = calloc((size_t)j->n_prompt, sizeof *j->prompt_lp)) ||
                                    !(j->chunk_logits = malloc(sizeof(float) * PREFILL_CHUNK * V))))
        goto oom;
    if (o->pooling && (!(j->hidden = malloc(sizeof(float) * PREFILL_CHUNK * E)) ||
                       !(j->pooled = calloc(E, sizeof(double)))))
        goto oom;
    if (o->logprobs >= 0) bn_sampler_set_logprobs(smp, o->logprobs);
    if (bn_session_claim(s) != 0) {
        bn_errf(err, "session in use (by an async generation or another thread)");
        goto fail;
    }
    bn_session_retain(s);
    j->s = s;
    j->smp = smp;
    pthread_mutex_lock(&e->lock);
    int ok = bn_work_fit(e->work, s->n_ctx) == 0;
    if (ok && e->n_jobs == e->cap_jobs) {
        int cap = e->cap_jobs ? e->cap_jobs * 2 : 16;
        bn_job **a = realloc(e->jobs, sizeof *a * (size_t)cap);
        if (a) {
            e->jobs = a;
            e->cap_jobs = cap;
        } else {
            ok = 0;
        }
    }
    if (ok) {
        e->jobs[e->n_jobs++] = j;
        j->attached = 1;
        pthread_cond_signal(&e->wake);
    }
    pthread_mutex_unlock(&e->lock);
    if (ok) return j;
    j->smp = NULL; /* the caller's error path frees it below */
    bn_job_free(j);
    j = NULL;
oom:
    bn_errf(err, "out of memory for a generation");
fail:
    if (j) {
        free(j->prompt);
        free(j->spec_logits);
        free(j->prompt_lp);
        free(j->chunk_logits);
        free(j->hidden);
        free(j->pooled);
        free(j);
    }
    bn_sampler_free(smp);
    return NULL;
}

int bn_job_poll(bn_job *j, int32_t *out, int cap, bn_job_status *st) {
    return bn_job_poll_logprobs(j, out, NULL, cap, st);
}

int bn_job_prompt_logprobs(bn_job *j, bn_logprobs *out, int cap) {
    pthread_mutex_lock(&j->e->lock);
    int n = j->prompt_lp && j->st.prompt_fed == j->n_prompt ? j->n_prompt : -1;
    pthread_mutex_unlock(&j->e->lock);
    if (n > 0 && out && cap > 0) memcpy(out, j->prompt_lp, sizeof *out * (size_t)(n < cap ? n : cap));
    return n;
}

int bn_job_embedding(bn_job *j, float *out) {
    pthread_mutex_lock(&j->e->lock);
    int ready = j->pooled && j->st.prompt_fed == j->n_prompt;
    pthread_mutex_unlock(&j->e->lock);
    if (!ready) return -1;
    int64_t E = j->s->model->hp.n_embd;
    double scale = j->o.pooling == BN_POOL_MEAN ? 1.0 / j->n_prompt : 1.0, norm = 0.0;
    for (int64_t i = 0; i < E; i++) norm += j->pooled[i] * scale * j->pooled[i] * scale;
    norm = norm > 0.0 ? 1.0 / sqrt(norm) : 0.0;
    for (int64_t i = 0; i < E; i++) out[i] = (float)(j->pooled[i] * scale * norm);
    return 0;
}

int bn_job_poll_logprobs(bn_job *j, int32_t *out, bn_logprobs *lp, int cap, bn_job_status *st) {
    if (j->fd >= 0) { /* clear before copying: news after the copy sets it again */
        uint64_t v;
        while (read(j->fd, &v, j->fd == j->fd_write ? sizeof v : 1) > 0 && j->fd != j->fd_write) {}
    }
    pthread_mutex_lock(&j->e->lock);
    int n = j->n_tokens - j->n_polled;
    if (n > cap) n = cap;
    if (n > 0) memcpy(out, j->tokens + j->n_polled, sizeof(int32_t) * (size_t)n);
    if (n > 0 && lp && j->lps) memcpy(lp, j->lps + j->n_polled, sizeof *lp * (size_t)n);
    j->n_polled += n;
    *st = j->st;
    pthread_mutex_unlock(&j->e->lock);
    /* A finished job's descriptor stays readable, so a host that waits on it
     * after taking the last text still wakes to see the end. */
    if (st->end != BN_JOB_RUNNING) signal_fd(j);
    return n;
}

void bn_job_cancel(bn_job *j) {
    atomic_store(&j->cancel, 1);
    pthread_mutex_lock(&j->e->lock);
    pthread_cond_signal(&j->e->wake);
    pthread_mutex_unlock(&j->e->lock);
}

int bn_job_wait(bn_job *j, double timeout) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    if (timeout > 0) {
        double t = (double)until.tv_sec + (double)until.tv_nsec * 1e-9 + timeout;
        until.tv_sec = (time_t)t;
        until.tv_nsec = (long)((t - (double)until.tv_sec) * 1e9);
    }
    pthread_mutex_lock(&j->e->lock);
    while (j->st.end == BN_JOB_RUNNING && j->n_tokens == j->n_polled) {
        if (timeout == 0) break;
        if (timeout < 0) pthread_cond_wait(&j->e->news, &j->e->lock);
        else if (pthread_cond_timedwait(&j->e->news, &j->e->lock, &until) == ETIMEDOUT) break;
    }
    int news = j->st.end != BN_JOB_RUNNING || j->n_tokens > j->n_polled;
    pthread_mutex_unlock(&j->e->lock);
    return news;
}

int bn_job_fd(bn_job *j) {
    pthread_mutex_lock(&j->e->lock);
    if (j->fd < 0) {
#if defined(__linux__)
        j->fd = j->fd_write = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
#else
        int p[2];
        if (pipe(p) == 0) {
            fcntl(p[0], F_SETFL, O_NONBLOCK);
            fcntl(p[1], F_SETFL, O_NONBLOCK);
            fcntl(p[0], F_SETFD, FD_CLOEXEC);
            fcntl(p[1], F_SETFD, FD_CLOEXEC);
            j->fd = p[0];
            j->fd_write = p[1];
        }
#endif
        /* news that came before the descriptor existed */
        if (j->fd >= 0 && (j->n_tokens > j->n_polled || j->st.end != BN_JOB_RUNNING)) signal_fd(j);
    }
    int fd = j->fd;
    pthread_mutex_unlock(&j->e->lock);
    return fd;
}

const bn_sampler *bn_job_sampler(const bn_job *j) { return j->smp; }

const bn_job_opts *bn_job_options(const bn_job *j) { return &j->o; }

const bn_model *bn_job_model(const bn_job *j) { return j->s->model; }

void bn_job_free(bn_job *j) {
    if (!j) return;
    bn_engine *e = j->e;
    atomic_store(&j->cancel, 1);
    pthread_mutex_lock(&e->lock);
    pthread_cond_signal(&e->wake);
    while (j->attached) pthread_cond_wait(&e->news, &e->lock);
    pthread_mutex_unlock(&e->lock);
    if (j->fd >= 0) close(j->fd);
    if (j->fd_write >= 0 && j->fd_write != j->fd) close(j->fd_write);
    bn_sampler_free(j->smp);
    if (j->s) {
        bn_session_unclaim(j->s);
        bn_session_free(j->s);
    }
    free(j->tokens);
    free(j->lps);
    free(j->prompt);
    free(j->spec_logits);
    free(j->prompt_lp);
    free(j->chunk_logits);
    free(j->hidden);
    free(j->pooled);
    free(j);
}
