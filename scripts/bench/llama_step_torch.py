#!/usr/bin/python3
"""PyTorch CPU reference for scripts/bench/trainer.sh: times one
forward+backward of the LLaMA model in scripts/fixtures/llama_parity.py
(plain-torch HF-equivalent, eager attention like HF's default, logits for
every position, CE with ignore_index like HF) for the same shapes and packed
batch layout as pkg/llama's BenchmarkStep.

usage: llama_step_torch.py THREADS STEPS NAME D I L H KV V B T EX [OPT]
OPT 1: the whole trainer step, also clip_grad_norm_(1.0) and an AdamW
update (torch.optim.AdamW, its default implementation), as pkg/llama's
BenchmarkStep does with BENCH_OPT=1.
prints: NAME ms_per_step tokens_per_s peak_rss_MiB
"""
import math
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
from llama_parity import llama, param_shapes  # noqa: E402

threads, steps = int(sys.argv[1]), int(sys.argv[2])
name = sys.argv[3]
D, I, L, H, KV, V, B, T, EX = map(int, sys.argv[4:13])
with_opt = len(sys.argv) > 13 and sys.argv[13] == "1"
torch.set_num_threads(threads)
torch.manual_seed(0)
cfg = {"hidden_size": D, "intermediate_size": I, "num_hidden_layers": L, "num_attention_heads": H,
       "num_key_value_heads": KV, "vocab_size": V, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
       "tie_word_embeddings": False}
P = {}
for n, shape in param_shapes(cfg):
    P[n] = (torch.ones(shape) if len(shape) == 1 else torch.randn(shape) * 0.02).requires_grad_(True)
t = torch.arange(B * T) % T
tokens = torch.randint(0, V, (B, T))
pos = (t % EX).view(B, T)
seg = (t // EX).view(B, T)
target = torch.full((B * T,), -1, dtype=torch.long)
keep = ((t % EX) >= EX // 4) & ((t % EX) < EX - 1)
flat = tokens.view(-1)
nxt = torch.cat([flat[1:], flat[:1]])
target[keep] = nxt[keep]


opt = torch.optim.AdamW(list(P.values()), lr=1e-5, weight_decay=0.0) if with_opt else None


def step():
    for p in P.values():
        p.grad = None
    logits = llama(cfg, P, tokens, pos, seg, torch.float32)
    loss = torch.nn.functional.cross_entropy(logits.view(-1, V), target, ignore_index=-1, reduction="sum")
    loss.backward()
    if opt is not None:
        torch.nn.utils.clip_grad_norm_(list(P.values()), 1.0)
        opt.step()


step()
t0 = time.perf_counter()
for _ in range(steps):
    step()
dt = (time.perf_counter() - t0) / steps
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("%s %.2f %.1f %.0f" % (name, dt * 1000, B * T / dt, rss))
