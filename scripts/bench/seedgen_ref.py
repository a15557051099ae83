#!/usr/bin/env python3
"""Reference timing for scripts/bench/seedgen.sh: the original generator's
inline dedup step in plain Python (no packages), on the same instructions.

For every candidate the Stanford Alpaca generator scored ROUGE-L against
every instruction in the pool (seeds + kept), dropped it when the best
F > 0.7, else kept it with its 10 most similar instructions and the mean
score. Tokenisation as Google's rouge_score without stemming: lower-case,
non [a-z0-9] -> space, split. This re-implements that loop (single process;
the original used a multiprocessing pool) and prints its CPU seconds.

Usage: seedgen_ref.py SEEDS.jsonl GENERATED.jsonl N
"""
import json
import re
import sys
import time

NON_ALNUM = re.compile(r"[^a-z0-9]+")


def tokens(s):
    return [t for t in NON_ALNUM.sub(" ", s.lower()).split() if t]


def lcs(a, b):
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def fmeasure(pool, cand):
    n = lcs(pool, cand)
    if n == 0:
        return 0.0
    p, r = n / len(cand), n / len(pool)
    return 2 * p * r / (p + r)


def main():
    seeds = [json.loads(l)["instruction"] for l in open(sys.argv[1], encoding="utf-8") if l.strip()]
    cands = []
    with open(sys.argv[2], encoding="utf-8") as f:
        for l in f:
            cands.append(json.loads(l)["instruction"])
            if len(cands) >= int(sys.argv[3]):
                break
    pool = [tokens(s) for s in seeds]
    texts = list(seeds)
    t0 = time.process_time()
    kept = 0
    for c in cands:
        ct = tokens(c)
        scores = [fmeasure(p, ct) for p in pool]
        if scores and max(scores) > 0.7:
            continue
        order = sorted(range(len(scores)), key=lambda i: scores[i])[-10:][::-1]
        _ = {texts[i]: scores[i] for i in order}
        _ = sum(scores) / len(scores)
        pool.append(ct)
        texts.append(c)
        kept += 1
    print("%.3f %d" % (time.process_time() - t0, kept))


if __name__ == "__main__":
    main()
