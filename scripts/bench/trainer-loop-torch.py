#!/usr/bin/python3
"""PyTorch CPU side of scripts/bench/trainer-loop.sh: the same training step
as `trainer` (LLaMA forward/backward, cross-entropy over every position,
clip_grad_norm_(1.0), torch.optim.AdamW) on the same shapes and threads,
with the plain-torch LlamaForCausalLM of scripts/fixtures/llama_parity.py.
Also writes the token stream both sides train on (--write-stream).

usage: trainer-loop-torch.py CONFIG.json B T STEPS THREADS
       trainer-loop-torch.py --write-stream PATH VOCAB N T
Prints: "torch step_s=<mean seconds per step after the first> tok_s=<tokens/s> rss_mb=<peak>"
"""
import importlib.util
import json
import math
import os
import resource
import struct
import sys
import time


def write_stream(path, vocab, n, T):
    import random
    r = random.Random(1)
    width = 2 if vocab <= 65536 else 4
    out = bytearray(b"ALPTOKS\0")
    out += struct.pack("<HBBIiii", 1, width, 0, vocab, 1, 2, -1)
    out += bytes(32)  # no tokenizer fingerprint: the trainer skips that check
    out += struct.pack("<I", 2) + b"{}"
    fmt = "<%d%s" % (T, "H" if width == 2 else "I")
    mask = bytearray([0xFF] * (T // 8))
    if T % 8:
        mask.append((1 << (T % 8)) - 1)
    for _ in range(n):
        out += struct.pack("<I", T) + struct.pack(fmt, *[r.randrange(3, vocab) for _ in range(T)]) + mask
    out += struct.pack("<IQQ", 0xFFFFFFFF, n, n * T)
    with open(path, "wb") as f:
        f.write(out)


def main():
    if sys.argv[1] == "--write-stream":
        write_stream(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
        return
    import torch
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location("lp", os.path.join(here, "..", "fixtures", "llama_parity.py"))
    lp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lp)
    cfg = json.load(open(sys.argv[1]))
    cfg.setdefault("num_key_value_heads", cfg["num_attention_heads"])
    cfg.setdefault("tie_word_embeddings", False)
    B, T, steps, threads = (int(x) for x in sys.argv[2:6])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    P = {}
    for n, shape in lp.param_shapes(cfg):
        P[n] = torch.nn.Parameter(torch.ones(shape) if len(shape) == 1 else torch.randn(shape) * 0.02)
    opt = torch.optim.AdamW(list(P.values()), lr=2e-5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    V = cfg["vocab_size"]
    pos = torch.arange(T)[None].expand(B, T)
    seg = torch.zeros(B, T, dtype=torch.long)
    times = []
    for s in range(steps):
        tokens = torch.randint(3, V, (B, T))
        t0 = time.perf_counter()
        opt.zero_grad()
        logits = lp.llama(cfg, P, tokens, pos, seg, torch.float32)
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, V), tokens[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(P.values()), 1.0)
        opt.step()
        times.append(time.perf_counter() - t0)
    step = sum(times[1:]) / max(1, len(times) - 1)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("torch step_s=%.4f tok_s=%.0f rss_mb=%.0f" % (step, B * T / step, rss))


main()
