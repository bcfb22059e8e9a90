#!/usr/bin/env python3
"""Golden for src/gpu/ref/adamw.ref.ts and adamw.wgsl: torch.optim.AdamW after clip_grad_norm_, a few steps.

Three tensors as a LoRA trainer has them: lora_A [4, 6] (lr, decay), lora_B [6, 4] (LoRA+: lr·16, decay) and a
bias [5] (no weight decay), each its own param group. Gradients are random per step with a varying scale so the
global-norm clip is active on some steps and not on others. Records the parameters after every step and
clip_grad_norm_'s total norm.

Run: .venv-ref/bin/python scripts/golden_adamw.py   (writes src/gpu/ref/golden/adamw.json)
"""
import json
import os

import torch

OUT = os.path.join(os.path.dirname(__file__), "..", "src", "gpu", "ref", "golden", "adamw.json")


def main():
    torch.manual_seed(0)
    hyper = {"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weightDecay": 0.1, "maxGradNorm": 1.0}
    tensors = [
        {"name": "lora_A", "shape": [4, 6], "lrScale": 1.0, "decay": True},
        {"name": "lora_B", "shape": [6, 4], "lrScale": 16.0, "decay": True},
        {"name": "bias", "shape": [5], "lrScale": 1.0, "decay": False},
    ]
    params = [torch.nn.Parameter(torch.randn(*t["shape"]) * 0.5) for t in tensors]
    initial = [p.detach().clone() for p in params]
    groups = [
        {"params": [p], "lr": hyper["lr"] * t["lrScale"], "weight_decay": hyper["weightDecay"] if t["decay"] else 0.0}
        for p, t in zip(params, tensors)
    ]
    opt = torch.optim.AdamW(groups, lr=hyper["lr"], betas=(hyper["beta1"], hyper["beta2"]), eps=hyper["eps"])
    steps = []
    for step, scale in enumerate([0.05, 1.0, 0.2, 3.0], start=1):
        grads = [torch.randn(*t["shape"]) * scale for t in tensors]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        norm = torch.nn.utils.clip_grad_norm_(params, hyper["maxGradNorm"])
        opt.step()
        steps.append({
            "step": step,
            "grads": [g.reshape(-1).tolist() for g in grads],
            "norm": norm.item(),
            "params": [p.detach().reshape(-1).tolist() for p in params],
        })
    doc = {
        "description": "torch.optim.AdamW (one param group per tensor, lr·lrScale, weight_decay 0 when not decayed) "
                       "after torch.nn.utils.clip_grad_norm_(all params, maxGradNorm), float32 on the CPU",
        "torch": torch.__version__,
        "hyper": hyper,
        "tensors": tensors,
        "initial": [p.reshape(-1).tolist() for p in initial],
        "steps": steps,
    }
    with open(OUT, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(OUT, [round(s["norm"], 4) for s in steps])


if __name__ == "__main__":
    main()
