"""Golden bottleneck-adapter (Houlsby, Pfeiffer) training runs, and the live check of our exported adapters, from a
small PyTorch reference written here: PEFT has no bottleneck adapters.

    .venv-ref/bin/python scripts/golden_bottleneck.py            # goldens, after scripts/make_fixtures.py
    .venv-ref/bin/python scripts/golden_bottleneck.py --check    # jobs (JSON) on stdin, results (JSON) on stdout

The reference: the transformers model (float64, eager attention, eval mode) with a forward hook on every target
module that replaces its output h by h + adapter_up(act(adapter_down(h))) — adapter_down = nn.Linear(out, m),
adapter_up = nn.Linear(m, out), m = max(1, out // reduction_factor) — the placement of adapter-transformers' output
adapters, inside the residual branch. Houlsby: after the attention output projection and after the MLP (o_proj and
down_proj; GPT-2: attn.c_proj and mlp.c_proj); Pfeiffer: after the MLP only. adapter_down as nn.Linear initialises it
(kaiming-uniform a=√5, bias U(±1/√fan_in)) drawn by torch after torch.manual_seed(SEED); adapter_up weight and bias
zero, so step 0 is the base model.

Writes, for each method in METHODS and fixture in FIXTURES, tests/fixtures/golden/train_<method>_<fixture>.json:
    {
      "fixture", "method", "reference", "dtype": "float64",
      "bottleneck": {"reduction_factor", "non_linearity", "target_modules": [module paths]},
      "optimizer": golden_train.py's, lr LR, weight_decay WD — on the adapter weights only (param groups: the biases
                   have none, as the engine's decay flags say),
      "rows", "tokens",
      "modules": [{"path", "out", "size"}],
      "initial": {"<path>.adapter_down.weight": [m*out], "<path>.adapter_down.bias": [m]},   as drawn (f32 values)
      "steps": [{"step", "loss", "grad_norm", "lr"} × 10],
      "final_loss",
      "grads": {"1": {segment: [...]}, "2": {...}},     raw gradients of every adapter tensor, flattened row-major
      "final": {segment: [...]}                         every adapter tensor after the 10 steps
    }
Segment names are the file's tensor names: "<module path>.adapter_down.weight|bias", "<module path>.adapter_up.weight|bias"
(src/train/methods/bottleneck/format.ts).

--check: stdin [{"base": model folder, "adapter": our exported folder, "rows": [{"input_ids", "labels"}]}]; for each,
the adapter is loaded into the hooked model from adapter_config.json and adapter_model.safetensors, and stdout gets
[{"loaded": n tensors, "adapter": {"loss", "tokens"}, "base": {"loss", "tokens"}, "max_abs_logit_diff_vs_base"}].
"""

from __future__ import annotations

import json
import math
import sys

import torch
import transformers
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from golden_train import MODELS, OUT, ROOT, SEED, STEPS, contract_loss, f32, pad_batch, rows_for

FIXTURES = ("gpt2", "llama", "qwen3")
METHODS = ("houlsby", "pfeiffer")
# The fixtures are 32 wide: reduction factor 8 gives a bottleneck of 4.
REDUCTION_FACTOR = 8
# One non-linearity per run, so every one is checked against torch somewhere.
ACTIVATION = {
    ("houlsby", "gpt2"): "gelu_new", ("houlsby", "llama"): "silu", ("houlsby", "qwen3"): "relu",
    ("pfeiffer", "gpt2"): "relu", ("pfeiffer", "llama"): "gelu_new", ("pfeiffer", "qwen3"): "silu",
}
LR = 5e-3
WD = 0.1
PARTS = ("adapter_down.weight", "adapter_down.bias", "adapter_up.weight", "adapter_up.bias")


def act_fn(name: str):
    if name == "relu":
        return torch.nn.ReLU()
    if name == "silu":
        return torch.nn.SiLU()
    if name == "gelu_new":
        from transformers.activations import NewGELUActivation
        return NewGELUActivation()
    raise ValueError(f"non_linearity {name!r}: must be relu, gelu_new or silu")


def target_paths(model, method: str) -> list[str]:
    gpt2 = model.config.model_type == "gpt2"
    wanted = (("attn.c_proj", "mlp.c_proj") if gpt2 else ("self_attn.o_proj", "mlp.down_proj")) if method == "houlsby" \
        else (("mlp.c_proj",) if gpt2 else ("mlp.down_proj",))
    return [name for name, _ in model.named_modules() if any(name.endswith("." + w) for w in wanted)]


def out_features(module) -> int:
    # nn.Linear: out_features; GPT-2's Conv1D: nf.
    return module.out_features if hasattr(module, "out_features") else module.nf


class Bottleneck(torch.nn.Module):
    def __init__(self, out: int, size: int, non_linearity: str):
        super().__init__()
        self.adapter_down = torch.nn.Linear(out, size)  # nn.Linear's own init: kaiming-uniform a=√5, bias U(±1/√out)
        self.act = act_fn(non_linearity)
        self.adapter_up = torch.nn.Linear(size, out)
        torch.nn.init.zeros_(self.adapter_up.weight)
        torch.nn.init.zeros_(self.adapter_up.bias)

    def forward(self, h):
        return h + self.adapter_up(self.act(self.adapter_down(h)))


def add_adapters(model, paths: list[str], reduction_factor: float, non_linearity: str) -> dict[str, Bottleneck]:
    modules = dict(model.named_modules())
    adapters = {}
    for path in paths:
        out = out_features(modules[path])
        adapter = Bottleneck(out, max(1, int(out // reduction_factor)), non_linearity)
        modules[path].register_forward_hook(lambda _m, _inp, h, a=adapter: a(h))
        adapters[path] = adapter
    return adapters


def tensors_of(adapters: dict[str, Bottleneck]) -> dict[str, torch.Tensor]:
    out = {}
    for path, a in adapters.items():
        out[f"{path}.adapter_down.weight"] = a.adapter_down.weight
        out[f"{path}.adapter_down.bias"] = a.adapter_down.bias
        out[f"{path}.adapter_up.weight"] = a.adapter_up.weight
        out[f"{path}.adapter_up.bias"] = a.adapter_up.bias
    return out


def train(method: str, name: str) -> None:
    model = AutoModelForCausalLM.from_pretrained(MODELS / name, dtype=torch.float32, attn_implementation="eager")
    for p in model.parameters():
        p.requires_grad_(False)
    non_linearity = ACTIVATION[(method, name)]
    paths = target_paths(model, method)
    torch.manual_seed(SEED)
    adapters = add_adapters(model, paths, REDUCTION_FACTOR, non_linearity)
    named = tensors_of(adapters)
    initial = {k: f32(v.detach()) for k, v in named.items() if k.endswith(("adapter_down.weight", "adapter_down.bias"))}
    model = model.to(torch.float64)
    for a in adapters.values():
        a.to(torch.float64)
    model.eval()

    rows = rows_for(model.config.vocab_size, seed=SEED + len(name))
    ids, labels, mask = pad_batch(rows)
    params = list(named.values())
    decay = [v for k, v in named.items() if k.endswith(".weight")]
    no_decay = [v for k, v in named.items() if k.endswith(".bias")]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=LR, betas=(0.9, 0.999), eps=1e-8)

    steps, grads, tokens = [], {}, None
    for step in range(1, STEPS + 1):
        opt.zero_grad(set_to_none=True)
        out = model(input_ids=ids, attention_mask=mask)
        loss, tokens = contract_loss(out.logits, labels)
        loss.backward()
        if step in (1, 2):
            grads[str(step)] = {k: f32(v.grad) for k, v in named.items()}
        norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        steps.append({"step": step, "loss": loss.item(), "grad_norm": norm.item(), "lr": LR})
    with torch.no_grad():
        final_loss, _ = contract_loss(model(input_ids=ids, attention_mask=mask).logits, labels)

    modules = dict(model.named_modules())
    golden = {
        "fixture": name,
        "method": method,
        "reference": f"torch {torch.__version__}, transformers {transformers.__version__}",
        "dtype": "float64",
        "bottleneck": {"reduction_factor": REDUCTION_FACTOR, "non_linearity": non_linearity, "target_modules": paths},
        "optimizer": {"name": "AdamW", "lr": LR, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": WD,
                      "schedule": "constant", "warmup_steps": 0, "max_grad_norm": 1.0},
        "rows": rows,
        "tokens": tokens,
        "modules": [{"path": p, "out": out_features(modules[p]), "size": adapters[p].adapter_down.out_features} for p in paths],
        "initial": initial,
        "steps": steps,
        "final_loss": float(final_loss),
        "grads": grads,
        "final": {k: f32(v.detach()) for k, v in named.items()},
    }
    (OUT / f"train_{method}_{name}.json").write_text(json.dumps(golden) + "\n")
    losses = ", ".join(f"{s['loss']:.4f}" for s in steps)
    print(f"{method} {name} ({non_linearity}): {len(paths)} adapters, {tokens} trained tokens, losses {losses} → {float(final_loss):.4f}")


def check(jobs: list[dict]) -> list[dict]:
    results = []
    for job in jobs:
        model = AutoModelForCausalLM.from_pretrained(job["base"], dtype=torch.float32, attn_implementation="eager")
        model = model.to(torch.float64)
        model.eval()
        ids, labels, mask = pad_batch(job["rows"])
        with torch.no_grad():
            base_logits = model(input_ids=ids, attention_mask=mask).logits
            base_loss, tokens = contract_loss(base_logits, labels)
        cfg = json.loads((__import__("pathlib").Path(job["adapter"]) / "adapter_config.json").read_text())
        assert cfg["adapter_type"] == "bottleneck" and cfg["format"] == "lora-studio-bottleneck/1", cfg
        adapters = add_adapters(model, cfg["target_modules"], cfg["reduction_factor"], cfg["non_linearity"])
        state = load_file(str(__import__("pathlib").Path(job["adapter"]) / "adapter_model.safetensors"))
        mine = tensors_of(adapters)
        assert sorted(state) == sorted(mine), (sorted(state), sorted(mine))
        with torch.no_grad():
            for k, v in state.items():
                assert mine[k].shape == v.shape, (k, mine[k].shape, v.shape)
                mine[k].copy_(v)
        for a in adapters.values():
            a.to(torch.float64)
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask).logits
            loss, tokens = contract_loss(logits, labels)
        results.append({
            "loaded": len(state),
            "adapter": {"loss": float(loss), "tokens": tokens},
            "base": {"loss": float(base_loss), "tokens": tokens},
            "max_abs_logit_diff_vs_base": float((logits - base_logits).abs().max()),
        })
    return results


def main() -> None:
    import os

    os.chdir(ROOT)
    torch.use_deterministic_algorithms(True)
    if "--check" in sys.argv:
        json.dump(check(json.load(sys.stdin)), sys.stdout)
        return
    for method in METHODS:
        for name in FIXTURES:
            train(method, name)


if __name__ == "__main__":
    main()
