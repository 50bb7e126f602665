"""KJV corpus for the small BitNet model: train text and held-out eval text.

Source: Debian's bible-kjv, `bible -f "gen1:1-rev22:21"` (one verse per line,
"Ge1:1 In the beginning ..."). We strip the leading reference so each verse is
one line of plain text.

Held out COMPLETELY (never used for training the model or the tokenizer):
the books of Ruth and Philippians. The eval text is Ruth's verses followed by
Philippians' verses, joined with "\n", with a trailing "\n".

Run `python3 data.py` to (re)build the cache in tools/train/work/.
"""
import hashlib
import os
import re
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
WORK = os.path.join(HERE, "work")
HELD_OUT = ("Ruth", "Phi")          # book abbreviations printed by `bible`
REF_RE = re.compile(r"^([1-3]?[A-Za-z]+)(\d+):(\d+) (.*)$")


def read_verses():
    """Return [(book_abbrev, text)] for all 31,102 verses, in canonical order."""
    out = subprocess.run(["bible", "-f", "gen1:1-rev22:21"], check=True,
                         stdout=subprocess.PIPE).stdout.decode("utf-8")
    verses = []
    for line in out.split("\n"):
        if not line.strip():
            continue
        m = REF_RE.match(line)
        if not m:
            raise ValueError("unexpected line from bible: %r" % line[:80])
        text = m.group(4).strip()
        verses.append((m.group(1), text))
    if len(verses) != 31102:
        raise ValueError("expected 31102 verses, got %d" % len(verses))
    return verses


def build():
    verses = read_verses()
    train, ruth, phil, books = [], [], [], []
    for book, text in verses:
        if book == "Ruth":
            ruth.append(text)
        elif book == "Phi":
            phil.append(text)
        else:
            train.append(text)
            books.append(book)
    assert len(ruth) == 85 and len(phil) == 104, (len(ruth), len(phil))
    train_text = "\n".join(train) + "\n"
    eval_text = "\n".join(ruth + phil) + "\n"
    # book start line numbers, so training can treat books as documents
    starts = [i for i, b in enumerate(books) if i == 0 or books[i - 1] != b]
    return train_text, eval_text, starts


def _write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    os.replace(tmp, path)


def paths():
    return (os.path.join(WORK, "train.txt"), os.path.join(WORK, "eval.txt"),
            os.path.join(WORK, "book_starts.txt"))


def load():
    """(train_text, eval_text, book_start_lines); builds the cache if missing."""
    tp, ep, bp = paths()
    if not (os.path.exists(tp) and os.path.exists(ep) and os.path.exists(bp)):
        os.makedirs(WORK, exist_ok=True)
        train_text, eval_text, starts = build()
        _write(tp, train_text)
        _write(ep, eval_text)
        _write(bp, "".join("%d\n" % s for s in starts))
    with open(tp, encoding="utf-8", newline="") as f:
        train_text = f.read()
    with open(ep, encoding="utf-8", newline="") as f:
        eval_text = f.read()
    with open(bp) as f:
        starts = [int(x) for x in f.read().split()]
    return train_text, eval_text, starts


if __name__ == "__main__":
    for p in paths():
        if os.path.exists(p):
            os.remove(p)
    tr, ev, st = load()
    for name, t in (("train", tr), ("eval", ev)):
        print("%s: %d lines, %d bytes, sha256 %s" % (
            name, t.count("\n"), len(t.encode("utf-8")),
            hashlib.sha256(t.encode("utf-8")).hexdigest()[:16]))
    print("books in train:", len(st))
