"""Memory of MLM pretraining per process (= per GPU under DDP) for hidden sizes 256-768 (issue 24 §4).

For each encoder size (hidden 256 / 4 layers -- configs/pretrain-corpus.yaml; 384 / 6; 512 / 8;
768 / 12 -- BERT-base), two numbers:

* **computed**, for a GPU: parameters P counted from the real ``BertForMaskedLM`` of cloudphys'
  vocabulary; weights, gradients and AdamW's two moments in fp32 = 16 bytes x P (bf16 autocast keeps
  fp32 weights; DDP adds one gradient bucket copy, ~4 bytes x P); activations kept for the backward
  pass under bf16 autocast ~ s*b*h*(34 + 5*a*s/h) bytes a layer (Korthikanti et al. 2022, "Reducing
  activation recomputation", without sequence parallelism) plus the MLM logits b*s*V*(2 + 4 + 4)
  bytes (bf16 logits, fp32 softmax and its gradient) -- for b strings of s tokens per GPU;
* **measured** on this CPU in fp32 (a subprocess per size): the growth of the peak RSS
  (``ru_maxrss``) from before the model is built to after 3 optimizer steps at batch 32, 64 tokens
  (the fp32 activations are ~2x the bf16 ones of the formula; the CPU allocator keeps freed blocks, so
  the measurement is an upper bound of what the tensors need).

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_memory.py [--measure]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

SIZES = [(256, 4, 4), (384, 6, 6), (512, 8, 8), (768, 12, 12)]  # hidden, layers, heads


def _model(hidden: int, layers: int, heads: int, max_len: int = 256):
    from cloudphys.modeling.model import load_tokenizer
    from cloudphys.training.mlm import mlm_model

    tok = load_tokenizer(max_len)
    ep = {"hidden_size": hidden, "num_layers": layers, "num_heads": heads, "max_length": max_len, "dropout": 0.1}
    return mlm_model(ep, tok), tok


def computed(hidden: int, layers: int, heads: int, batch: int, seq: int) -> dict:
    model, tok = _model(hidden, layers, heads)
    p = sum(t.numel() for t in model.parameters())
    vocab = len(tok.get_vocab())
    states = 16 * p
    act = layers * seq * batch * hidden * (34 + 5 * heads * seq / hidden) + batch * seq * vocab * 10
    return {"hidden": hidden, "layers": layers, "heads": heads, "params": p, "batch": batch, "seq": seq,
            "states_gb": states / 1e9, "ddp_bucket_gb": 4 * p / 1e9, "activations_gb": act / 1e9,
            "total_gb": (states + 4 * p + act) / 1e9}


def _measure_child(hidden: int, layers: int, heads: int, batch: int, seq: int) -> dict:
    import torch

    torch.set_num_threads(1)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    model, tok = _model(hidden, layers, heads)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, len(tok.get_vocab()), (batch, seq), generator=g)
    labels = torch.where(torch.rand(batch, seq, generator=g) < 0.15, ids, torch.full_like(ids, -100))
    t0 = time.perf_counter()
    for _ in range(3):
        loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    sec = (time.perf_counter() - t0) / 3
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"hidden": hidden, "layers": layers, "batch": batch, "seq": seq, "measured_fp32_cpu_gb": (peak - rss0) / 1e6 * 1.024,
            "seconds_per_step": sec, "load": " ".join(f"{x:.2f}" for x in os.getloadavg())}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        print(json.dumps(_measure_child(*map(int, sys.argv[2:7]))))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--measure", action="store_true", help="also measure on this CPU (fp32, batch 32, 64 tokens)")
    args = ap.parse_args()
    print("| hidden / layers / heads | parameters | weights+grads+AdamW (fp32) | activations, 64 tok x 256/GPU (bf16) |"
          " activations, 256 tok x 64/GPU | total at 64 tok x 256 (+DDP bucket) | computed fp32, 64 tok x 32 |"
          " measured fp32 CPU, 64 tok x 32 |")
    print("|---|---|---|---|---|---|---|---|")
    for h, n_layers, a in SIZES:
        c = computed(h, n_layers, a, 256, 64)
        c2 = computed(h, n_layers, a, 64, 256)
        small = computed(h, n_layers, a, 32, 64)
        fp32_small = small["states_gb"] + 2 * small["activations_gb"]
        meas = ""
        if args.measure:
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            out = subprocess.run([sys.executable, __file__, "_child", str(h), str(n_layers), str(a), "32", "64"],
                                 capture_output=True, text=True, env=env, check=True).stdout
            m = json.loads(out.strip().splitlines()[-1])
            meas = f"{m['measured_fp32_cpu_gb']:.2f} GB ({m['seconds_per_step']:.1f} s/step, load {m['load']})"
        print(f"| {h} / {n_layers} / {a} | {c['params'] / 1e6:.1f} M | {c['states_gb']:.2f} GB | "
              f"{c['activations_gb']:.2f} GB | {c2['activations_gb']:.2f} GB | {c['total_gb']:.2f} GB | "
              f"{fp32_small:.2f} GB | {meas} |", flush=True)


if __name__ == "__main__":
    main()
