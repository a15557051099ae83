#!/usr/bin/python3
"""PyTorch CPU reference for scripts/bench/lora.sh: one LoRA training step
(forward, backward into the adapter only, clip_grad_norm_(1.0) over the
adapter, torch.optim.AdamW over the adapter) of the plain-torch LLaMA of
scripts/fixtures/llama_parity.py with PEFT's LoRA formula
(scripts/fixtures/lora_fixture.py: y = x W^T + B(A(dropout(x))) * alpha/r)
on q_proj and v_proj, r 8, alpha 16, dropout 0.05 (alpaca-lora's
defaults), fp32, the frozen base without gradients; the same shapes and
packed batch as pkg/llama's BenchmarkLoRAStep.

usage: lora_step_torch.py THREADS STEPS NAME D I L H KV V B T EX
prints: NAME ms_per_step tokens_per_s peak_rss_MiB
"""
import math
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
from llama_parity import param_shapes  # noqa: E402
from lora_fixture import forward, peft_name  # noqa: E402

threads, steps = int(sys.argv[1]), int(sys.argv[2])
name = sys.argv[3]
D, I, L, H, KV, V, B, T, EX = map(int, sys.argv[4:13])
R, ALPHA, DROP = 8, 16.0, 0.05
torch.set_num_threads(threads)
torch.manual_seed(0)
cfg = {"hidden_size": D, "intermediate_size": I, "num_hidden_layers": L, "num_attention_heads": H,
       "num_key_value_heads": KV, "vocab_size": V, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
       "tie_word_embeddings": False}
P = {}
with torch.no_grad():
    for n, shape in param_shapes(cfg):
        P[n] = torch.ones(shape) if len(shape) == 1 else torch.randn(shape) * 0.02
dkv = KV * D // H
A = {}
for l in range(L):
    for t, out in (("q_proj", D), ("v_proj", dkv)):
        a = torch.empty(R, D)
        torch.nn.init.kaiming_uniform_(a, a=math.sqrt(5))
        A[peft_name(l, t, "A")] = a.requires_grad_(True)
        A[peft_name(l, t, "B")] = torch.zeros(out, R).requires_grad_(True)
t = torch.arange(B * T) % T
tokens = torch.randint(0, V, (B, T))
pos = (t % EX).view(B, T)
seg = (t // EX).view(B, T)
target = torch.full((B * T,), -1, dtype=torch.long)
keep = ((t % EX) >= EX // 4) & ((t % EX) < EX - 1)
flat = tokens.view(-1)
nxt = torch.cat([flat[1:], flat[:1]])
target[keep] = nxt[keep]
params = list(A.values())
opt = torch.optim.AdamW(params, lr=3e-4, weight_decay=0.0)


def step():
    for p in params:
        p.grad = None
    logits = forward(cfg, P, A, tokens, pos, seg, torch.float32, ALPHA / R, DROP)
    loss = torch.nn.functional.cross_entropy(logits.view(-1, V), target, ignore_index=-1, reduction="sum")
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()


step()
t0 = time.perf_counter()
for _ in range(steps):
    step()
dt = (time.perf_counter() - t0) / steps
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("%s %.2f %.1f %.0f" % (name, dt * 1000, B * T / dt, rss))
