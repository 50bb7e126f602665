"""Plot work/<run>/loss.csv (train loss and held-out loss) to a PNG.

    /usr/bin/python3 plot_loss.py --run main --out ../../models/kjv-bitnet-6m/loss.png
"""
import argparse
import csv
import os

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import data  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default="main")
    ap.add_argument("--out", required=True)
    ap.add_argument("--title", default="")
    a = ap.parse_args()
    rows = list(csv.DictReader(open(os.path.join(data.WORK, a.run, "loss.csv"))))
    # after a resume the log may repeat steps: keep the last entry for each step
    by_step = {}
    for r in rows:
        by_step[int(r["step"])] = r
    rows = [by_step[s] for s in sorted(by_step)]
    tok = [int(r["tokens"]) / 1e6 for r in rows]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    ax.plot(tok, [float(r["train_loss"]) for r in rows], lw=1, label="train loss (batch mean)")
    ev = [(int(r["tokens"]) / 1e6, float(r["eval_loss"])) for r in rows if r["eval_loss"]]
    if ev:
        ax.plot(*zip(*ev), "o-", ms=3, label="held-out loss (Ruth + Philippians)")
    ax.set_xlabel("training tokens (millions)")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_ylim(bottom=max(0.0, min(float(r["train_loss"]) for r in rows) - 0.5),
                top=min(8.5, max(float(r["train_loss"]) for r in rows) + 0.2))
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(a.title or "BitNet b1.58 KJV training (%s)" % a.run)
    fig.tight_layout()
    fig.savefig(a.out)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
