#!/usr/bin/python3
"""Reference for scripts/bench/weightdiff.sh: the steps of Stanford Alpaca's
weight_diff.py recover on the CPU, with plain torch (transformers and the
safetensors package are not installed here): load the raw and the diff state
dicts in float32, resize the raw embeddings for the [PAD] row (mean of the
existing rows), add, take the naive sum check, save with torch.save (what
save_pretrained did for pytorch_model.bin) and fsync, as weightdiff does.
Usage: weightdiff_ref.py RAW_DIR DIFF_DIR OUT_DIR"""
import json, os, struct, sys, glob
import torch

DT = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}

def load_dir(d):
    sd = {}
    for path in sorted(glob.glob(os.path.join(d, "*.safetensors"))):
        with open(path, "rb") as f:
            data = f.read()  # whole file in memory, as torch.load does for .bin
        n = struct.unpack("<Q", data[:8])[0]
        hdr = json.loads(data[8:8 + n])
        buf = bytearray(data[8 + n:])
        del data
        for k, v in hdr.items():
            if k == "__metadata__":
                continue
            a, b = v["data_offsets"]
            t = torch.frombuffer(buf, dtype=DT[v["dtype"]], count=(b - a) // torch.tensor([], dtype=DT[v["dtype"]]).element_size(), offset=a)
            sd[k] = t.reshape(v["shape"]).to(torch.float32)
    return sd

@torch.inference_mode()
def main(raw_dir, diff_dir, out_dir):
    raw = load_dir(raw_dir)
    rec = load_dir(diff_dir)
    for k in ("model.embed_tokens.weight", "lm_head.weight"):
        if rec[k].shape[0] == raw[k].shape[0] + 1:  # smart_tokenizer_and_embedding_resize
            raw[k] = torch.cat([raw[k], raw[k].mean(dim=0, keepdim=True)])
    for k in rec:
        rec[k].add_(raw[k])
    allsum = sum(rec[k].sum() for k in rec)
    print(f"sum {allsum.item():.4f}", file=sys.stderr)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "pytorch_model.bin")
    torch.save(rec, path)
    with open(path, "rb") as f:  # weightdiff fsyncs its output; do the same here
        os.fsync(f.fileno())

if __name__ == "__main__":
    main(*sys.argv[1:4])
