"""Train the small BitNet b1.58 model on the KJV (Ruth and Philippians held out).

    cd tools/train
    nohup nice -n 10 /usr/bin/python3 train.py --run main > work/main.log 2>&1 &
    # after a kill:
    nohup nice -n 10 /usr/bin/python3 train.py --run main --resume >> work/main.log 2>&1 &

Checkpoints (model + optimizer + step + RNG) go to work/<run>/ckpt.pt every
--ckpt-every seconds and at the end; the loss log is work/<run>/loss.csv.
"""
import argparse
import csv
import json
import math
import os
import random
import time

import numpy as np
import torch
import torch.nn.functional as F

import bpe
import data
from model import BitNetLM, Config


def get_args(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default="main")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--ffn", type=int, default=768)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--rope-theta", type=float, default=10000.0)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=2000,
                    help="maximum steps; the schedule ends at --steps or --time-budget")
    ap.add_argument("--time-budget", type=float, default=0.0,
                    help="training seconds; if set, the LR schedule runs on "
                         "max(step/steps, elapsed/time_budget) and training stops at 1")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--min-lr-frac", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--wd", type=float, default=0.05)
    ap.add_argument("--bos-frac", type=float, default=0.25,
                    help="fraction of windows that start with BOS at a verse start")
    ap.add_argument("--new-time-budget", type=float, default=0.0,
                    help="with --resume: replace the saved time budget (e.g. the machine "
                         "was busier than planned); the cosine continues from the new progress")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ckpt-every", type=float, default=240.0, help="seconds")
    ap.add_argument("--eval-every", type=int, default=100, help="steps")
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--max-steps-this-run", type=int, default=0,
                    help="stop early (for throughput tests)")
    return ap.parse_args(argv)


def tokenizer():
    d = os.path.join(data.WORK, "tokenizer")
    if not os.path.exists(os.path.join(d, "tokenizer.json")):
        raise SystemExit("run bpe.py first")
    return bpe.load(d)


def token_stream(tok):
    """Train ids as one stream + token offsets where each verse starts."""
    cache = os.path.join(data.WORK, "train_ids.npz")
    if os.path.exists(cache):
        z = np.load(cache)
        return z["ids"], z["starts"]
    train_text, _, _ = data.load()
    ids, starts = [], []
    pos = 0
    line_start = True
    for piece in bpe.pretokenize(train_text):
        if line_start:
            starts.append(len(ids))
        ids.extend(tok.encode_piece(piece))
        line_start = piece.endswith("\n")
        pos += len(piece)
    assert pos == len(train_text)
    ids = np.array(ids, dtype=np.int32)
    starts = np.array(starts[:-1] if starts[-1] == len(ids) else starts, dtype=np.int64)
    np.savez(cache, ids=ids, starts=starts)
    return ids, starts


def get_batch(ids, starts, B, C, bos, bos_frac, rng):
    x = np.empty((B, C + 1), dtype=np.int64)
    for b in range(B):
        if rng.random() < bos_frac:
            s = int(starts[rng.integers(len(starts))])
            s = min(s, len(ids) - C)
            x[b, 0] = bos
            x[b, 1:] = ids[s:s + C]
        else:
            s = int(rng.integers(len(ids) - C - 1))
            x[b] = ids[s:s + C + 1]
    x = torch.from_numpy(x)
    return x[:, :-1], x[:, 1:]


def progress(step, elapsed, a):
    p = step / a.steps
    if a.time_budget > 0:
        p = max(p, elapsed / a.time_budget)
    return min(1.0, p)


def lr_at(step, elapsed, a):
    """Linear warmup over --warmup steps, then cosine (in overall progress: steps or
    wall time, whichever runs out first) down to min_lr_frac * lr."""
    if step < a.warmup:
        return a.lr * (step + 1) / a.warmup
    p = progress(step, elapsed, a)
    return a.lr * (a.min_lr_frac + (1 - a.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * p)))


@torch.no_grad()
def eval_loss(model, eval_ids, C):
    """Mean NLL on the held-out text with the half-overlap window protocol."""
    model.eval()
    N = len(eval_ids)
    stride = C // 2
    tot, n, prev_end, start = 0.0, 0, 1, 0
    while True:
        end = min(start + C, N)
        x = torch.tensor([eval_ids[start:end]])
        logp = model(x)[0].float().log_softmax(-1)
        for p in range(max(start + 1, prev_end), end):
            tot -= float(logp[p - 1 - start, eval_ids[p]])
            n += 1
        prev_end = end
        if end >= N:
            break
        start += stride
    model.train()
    return tot / n


def save_ckpt(path, model, opt, step, tokens_seen, elapsed, args, cfg, rng):
    tmp = path + ".tmp"
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                "tokens_seen": tokens_seen, "elapsed": elapsed, "args": vars(args),
                "config": cfg.to_dict(), "torch_rng": torch.get_rng_state(),
                "np_rng": rng.bit_generator.state, "py_rng": random.getstate()}, tmp)
    os.replace(tmp, path)


def main(argv=None):
    args = get_args(argv)
    torch.set_num_threads(args.threads)
    run_dir = os.path.join(data.WORK, args.run)
    os.makedirs(run_dir, exist_ok=True)
    ckpt_path = os.path.join(run_dir, "ckpt.pt")
    csv_path = os.path.join(run_dir, "loss.csv")

    tok = tokenizer()
    ids, starts = token_stream(tok)
    _, eval_text, _ = data.load()
    eval_ids = [tok.bos_id] + tok.encode(eval_text)

    ck = None
    if args.resume:
        ck = torch.load(ckpt_path)
        saved = ck["args"]
        for k in ("hidden", "ffn", "layers", "heads", "kv_heads", "ctx", "steps", "lr",
                  "time_budget",
                  "batch", "warmup", "wd", "min_lr_frac", "rope_theta", "bos_frac"):
            setattr(args, k, saved[k])   # the schedule must not change on resume
        if args.new_time_budget > 0:
            print("time budget %.0f -> %.0f s" % (args.time_budget, args.new_time_budget))
            args.time_budget = args.new_time_budget
        cfg = Config(**ck["config"])
    else:
        cfg = Config(vocab_size=len(tok.tokens), hidden_size=args.hidden,
                     intermediate_size=args.ffn, num_hidden_layers=args.layers,
                     num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
                     max_position_embeddings=args.ctx, rope_theta=args.rope_theta,
                     bos_token_id=tok.bos_id, eos_token_id=tok.eos_id)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = BitNetLM(cfg)
    decay = [p for n, p in model.named_parameters() if p.dim() == 2 and "embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() == 2 and "embed" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    step, tokens_seen, elapsed0 = 0, 0, 0.0
    if ck is not None:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, tokens_seen, elapsed0 = ck["step"], ck["tokens_seen"], ck["elapsed"]
        torch.set_rng_state(ck["torch_rng"])
        rng.bit_generator.state = ck["np_rng"]
        random.setstate(ck["py_rng"])
        print("resumed at step %d (%.0fs trained)" % (step, elapsed0), flush=True)
    else:
        with open(os.path.join(run_dir, "args.json"), "w") as f:
            json.dump({"args": vars(args), "config": cfg.to_dict()}, f, indent=1)
        with open(csv_path, "w") as f:
            f.write("step,tokens,train_loss,lr,elapsed_s,eval_loss,eval_bpb\n")
    total, nonemb = model.n_params()
    print("params: %d total, %d non-embedding; train tokens %d; config %s" % (
        total, nonemb, len(ids), cfg.to_dict()), flush=True)

    eval_bytes = len(eval_text.encode("utf-8"))
    eval_ntok = len(eval_ids) - 1
    model.train()
    t_start = time.time()
    last_ckpt = time.time()
    run_steps = 0
    loss_acc, n_acc = 0.0, 0
    elapsed = elapsed0
    while progress(step, elapsed, args) < 1.0:
        lr = lr_at(step, elapsed, args)
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = get_batch(ids, starts, args.batch, args.ctx, tok.bos_id, args.bos_frac, rng)
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        run_steps += 1
        tokens_seen += x.numel()
        loss_acc += float(loss)
        n_acc += 1
        elapsed = elapsed0 + time.time() - t_start
        ev, bpb = "", ""
        finished = progress(step, elapsed, args) >= 1.0
        if step % args.eval_every == 0 or finished:
            el = eval_loss(model, eval_ids, args.ctx)
            ev = "%.4f" % el
            bpb = "%.4f" % (el * eval_ntok / (math.log(2) * eval_bytes))
        if step % args.log_every == 0 or ev:
            tl = loss_acc / n_acc
            loss_acc, n_acc = 0.0, 0
            with open(csv_path, "a") as f:
                f.write("%d,%d,%.4f,%.6g,%.1f,%s,%s\n" % (step, tokens_seen, tl, lr,
                                                          elapsed, ev, bpb))
            rate = tokens_seen / max(elapsed, 1e-9)
            print("step %d loss %.4f lr %.2e %.0f tok/s elapsed %.0fs%s" % (
                step, tl, lr, rate, elapsed, (" eval %s bpb %s" % (ev, bpb)) if ev else ""),
                flush=True)
        if time.time() - last_ckpt > args.ckpt_every or finished:
            save_ckpt(ckpt_path, model, opt, step, tokens_seen, elapsed, args, cfg, rng)
            last_ckpt = time.time()
        if args.max_steps_this_run and run_steps >= args.max_steps_this_run:
            break
    save_ckpt(ckpt_path, model, opt, step, tokens_seen,
              elapsed0 + time.time() - t_start, args, cfg, rng)
    print("done at step %d" % step, flush=True)


if __name__ == "__main__":
    main()
