#!/usr/bin/env python3
"""Loads a model directory written by `trainer --device cuda` with Hugging
Face transformers and checks that it gives the logits our CUDA backend
computed for the same tokens (cuda.test -test.run TestDumpLogits wrote them:
LOGITS, little-endian float32 [T, vocab], and LOGITS.tokens, one id a line).

transformers runs in float32 with eager attention, on the GPU when there is
one (TF32 off). Passes when the normwise relative error
max|ours - theirs| / max|theirs| is at most --tol (default 1e-4); prints the
figures and exits 1 otherwise.
"""
import argparse
import sys

import numpy as np
import torch
from transformers import LlamaForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--logits", required=True)
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    model = LlamaForCausalLM.from_pretrained(a.model, torch_dtype=torch.float32, attn_implementation="eager")
    model.to(dev).eval()
    ids = [int(x) for x in open(a.logits + ".tokens").read().split()]
    ours = np.fromfile(a.logits, dtype="<f4")
    V = model.config.vocab_size
    if ours.size != len(ids) * V:
        print(f"hf_logits: FAIL: {ours.size} logits for {len(ids)} tokens x vocab {V}")
        sys.exit(1)
    ours = ours.reshape(len(ids), V)
    with torch.no_grad():
        theirs = model(torch.tensor([ids], device=dev)).logits[0].float().cpu().numpy()
    err = np.abs(ours.astype(np.float64) - theirs).max() / np.abs(theirs).max()
    agree = (ours.argmax(-1) == theirs.argmax(-1)).mean()
    ok = bool(np.isfinite(err)) and err <= a.tol
    print(f"hf_logits: {'PASS' if ok else 'FAIL'}: {len(ids)} positions x vocab {V}, normwise relative error "
          f"{err:.3g} (tol {a.tol:g}), argmax agreement {agree:.3f}, transformers on {dev}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
