#!/usr/bin/python3
"""PyTorch CPU reference for scripts/bench/generate.sh: prefill and greedy
decode speed of a Hugging Face LLaMA directory, with a KV cache, in plain
torch (transformers is not installed; the model is written out the way
LlamaForCausalLM computes it).

    generate_torch.py MODEL_DIR --threads 2 --prompt 64 --new 32 [--dtype bfloat16]

--dtype float32 computes in fp32; bfloat16 keeps the weights and the
arithmetic in bf16 (torch's CPU bf16 kernels); float16 weights are
converted to fp32 (torch 1.13 has no fp16 CPU matmul). Prints one JSON
line like `generate bench`.
"""
import argparse
import glob
import json
import math
import os
import struct
import time

import torch

DT = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}


def load_safetensors(path):
    out = {}
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        base = 8 + n
        data = f.read()
    for name, info in hdr.items():
        if name == "__metadata__":
            continue
        s, e = info["data_offsets"]
        t = torch.frombuffer(bytearray(data[s:e]), dtype=DT[info["dtype"]]).reshape(info["shape"])
        out[name] = t
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--new", type=int, default=32)
    ap.add_argument("--dtype", default="float32")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.time()
    cfg = json.load(open(os.path.join(a.model, "config.json")))
    W = {}
    for p in sorted(glob.glob(os.path.join(a.model, "*.safetensors"))):
        W.update(load_safetensors(p))
    dt = torch.bfloat16 if a.dtype == "bfloat16" else torch.float32
    W = {k: v.to(dt) for k, v in W.items()}
    load = time.time() - t0
    D, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads") or nh
    hd, L, eps = D // nh, cfg["num_hidden_layers"], cfg["rms_norm_eps"]
    head = W.get("lm_head.weight", W["model.embed_tokens.weight"])
    maxlen = a.prompt + a.new
    inv = 1.0 / (cfg.get("rope_theta", 10000.0) ** (torch.arange(0, hd, 2).float() / hd))
    fr = torch.outer(torch.arange(maxlen).float(), inv)
    emb = torch.cat((fr, fr), -1)
    cos, sin = emb.cos().to(dt), emb.sin().to(dt)
    K = [torch.zeros(nkv, maxlen, hd, dtype=dt) for _ in range(L)]
    V = [torch.zeros(nkv, maxlen, hd, dtype=dt) for _ in range(L)]

    def rms(x, w):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(dt) * w

    def rot(x):
        h = x.shape[-1] // 2
        return torch.cat((-x[..., h:], x[..., :h]), -1)

    def forward(ids, start):
        T = len(ids)
        x = W["model.embed_tokens.weight"][torch.tensor(ids)]
        c, s = cos[start:start + T], sin[start:start + T]
        for l in range(L):
            p = lambda n: W["model.layers.%d.%s" % (l, n)]
            h = rms(x, p("input_layernorm.weight"))
            q = (h @ p("self_attn.q_proj.weight").T).view(T, nh, hd).transpose(0, 1)
            k = (h @ p("self_attn.k_proj.weight").T).view(T, nkv, hd).transpose(0, 1)
            v = (h @ p("self_attn.v_proj.weight").T).view(T, nkv, hd).transpose(0, 1)
            q = q * c + rot(q) * s
            k = k * c + rot(k) * s
            K[l][:, start:start + T] = k
            V[l][:, start:start + T] = v
            kk = K[l][:, :start + T].repeat_interleave(nh // nkv, 0)
            vv = V[l][:, :start + T].repeat_interleave(nh // nkv, 0)
            att = (q @ kk.transpose(1, 2)) / math.sqrt(hd)
            mask = torch.full((T, start + T), float("-inf")).triu(start + 1).to(dt)
            att = torch.softmax((att + mask).float(), -1).to(dt)
            o = (att @ vv).transpose(0, 1).reshape(T, D)
            x = x + o @ p("self_attn.o_proj.weight").T
            h = rms(x, p("post_attention_layernorm.weight"))
            x = x + (torch.nn.functional.silu(h @ p("mlp.gate_proj.weight").T) * (h @ p("mlp.up_proj.weight").T)) @ p("mlp.down_proj.weight").T
        x = rms(x[-1:], W["model.norm.weight"])
        return (x @ head.T)[0]

    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, cfg["vocab_size"], (a.prompt,), generator=g).tolist()
    ids[0] = 1
    with torch.no_grad():
        t1 = time.time()
        tok = int(forward(ids, 0).argmax())
        prefill = time.time() - t1
        t2 = time.time()
        for i in range(a.new):
            tok = int(forward([tok], a.prompt + i).argmax())
        decode = time.time() - t2
    print(json.dumps({"model": a.model, "dtype": a.dtype, "threads": a.threads, "prompt_tokens": a.prompt, "new_tokens": a.new,
                      "load_s": load, "prefill_s": prefill, "decode_s": decode,
                      "prefill_tok_s": a.prompt / prefill, "decode_tok_s": a.new / decode}))


if __name__ == "__main__":
    main()
