#!/usr/bin/env python3
"""Training-step benchmark of Hugging Face transformers + PyTorch, the
reference beside `cuda.test -test.run TestBenchStep` (scripts/device/cuda.sh).

Same shapes as ours: LLaMA-7B layers (7b-L<n>: hidden 4096, MLP 11008, 32
heads, vocab 32000, n layers) and TinyLlama-1.1B (1b: hidden 2048, MLP 5632,
22 layers, 32/4 heads); a batch of B x T random tokens, every position a
target; one step = forward, backward, clip to norm 1, AdamW, zero_grad.

Modes: amp = fp32 master weights with bf16 autocast (what Alpaca's FSDP
mixed precision did); bf16 = weights, grads and AdamW moments in bf16.
MFU counts 6 x matmul parameters + 6 x layers x T x hidden FLOPs per token
(causal attention: half of the 12 x layers x T x hidden), like ours.

Prints one row per config and mode in the same columns as our benchmark.
"""
import argparse
import sys
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def config(name, T):
    if name.startswith("7b-L"):
        L = int(name[4:])
        return LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=L,
                           num_attention_heads=32, num_key_value_heads=32, vocab_size=32000,
                           max_position_embeddings=max(T, 2048), tie_word_embeddings=False)
    if name == "1b":
        return LlamaConfig(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                           num_attention_heads=32, num_key_value_heads=4, vocab_size=32000,
                           max_position_embeddings=max(T, 2048), tie_word_embeddings=False)
    raise SystemExit(f"unknown config {name!r} (want 7b-L<n> or 1b)")


def bench(name, mode, B, T, steps, peak):
    cfg = config(name, T)
    torch.manual_seed(0)
    dtype = torch.bfloat16 if mode == "bf16" else torch.float32
    with torch.device("cuda"):  # initialise on the GPU (CPU init of billions of weights is slow)
        model = LlamaForCausalLM(cfg).to(dtype=dtype)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=0.0, fused=True)
    ids = torch.randint(0, cfg.vocab_size, (B, T), device="cuda")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=(mode == "amp")):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # warm-up
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / steps
    P = sum(p.numel() for p in model.parameters())
    D, L = cfg.hidden_size, cfg.num_hidden_layers
    matP = P - cfg.vocab_size * D  # the embedding lookup is not a matmul
    flops_tok = 6 * matP + 6 * L * T * D
    tok = B * T
    mfu = flops_tok * tok / dt / (peak * 1e12) * 100
    used = torch.cuda.max_memory_allocated() / 2**30
    print(f"{name:<10} {'hf+torch ' + mode:<28} {P / 1e6:7.0f}M {dt * 1e3:10.1f} {tok / dt:9.0f} {mfu:7.2f} {used:9.1f}",
          flush=True)
    del model, opt
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", default="7b-L8,1b")
    ap.add_argument("--tokens", default="8x512", help="B x T")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--modes", default="amp,bf16")
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak (H100/H200 SXM: 989)")
    a = ap.parse_args()
    B, T = (int(x) for x in a.tokens.lower().split("x"))
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, B={B} T={T}", file=sys.stderr)
    print(f"{'config':<10} {'backend':<28} {'params':>8} {'ms/step':>10} {'tok/s':>9} {'MFU%':>7} {'GiB used':>9}")
    for name in a.configs.split(","):
        for mode in a.modes.split(","):
            try:
                bench(name, mode, B, T, a.steps, a.peak_tflops)
            except torch.cuda.OutOfMemoryError as e:
                print(f"{name:<10} {'hf+torch ' + mode:<28} out of memory: {str(e).splitlines()[0]}", flush=True)
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
