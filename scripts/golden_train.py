"""Golden LoRA training runs and adapter configs, produced by the real PEFT + transformers + torch.

    .venv-ref/bin/python scripts/golden_train.py        # after scripts/make_fixtures.py

Writes, for each fixture in FIXTURES:

  tests/fixtures/golden/train_<fixture>.json
    {
      "fixture", "reference" (library versions), "dtype": "float64",
      "lora": {"r": 4, "lora_alpha": 8, "lora_dropout": 0, "scaling": 2, "target_modules": PEFT's default,
               "fan_in_fan_out"},
      "optimizer": {"name": "AdamW", "lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0,
                    "schedule": "constant", "warmup_steps": 0, "max_grad_norm": 1.0},
      "batching": "...",                 # one micro-batch of every row per step, see BATCHING below
      "rows": [{"input_ids": [...], "labels": [...]}],       # unpadded; labels align with input_ids, -100 = ignored
      "tokens": number of trained positions (labels[t+1] != -100) in the batch,
      "modules": [{"path": "transformer.h.0.attn.c_attn", "in": 32, "out": 96,
                   "A0": [r*in] initial lora_A (row-major [r, in]); lora_B starts at zero}],
      "steps": [{"step": 1, "loss": loss before the update, "grad_norm": global L2 norm before clipping,
                 "lr": 1e-3}, ... 10 steps],
      "final_loss": the loss after the 10th update,
      "grads": {"1": {path: {"dA": [r*in], "dB": [out*r]}}, "2": {...}}   # raw gradients (before clipping)
    }

  tests/fixtures/golden/train_<fixture>_adapter/   the adapter after 10 steps, PEFT's save_pretrained: a real PEFT
                                                   adapter for the import tests.

and src/train/golden/adapter_config.<case>.json: adapter_config.json exactly as PEFT 0.21 writes it for a few
LoraConfigs (the TypeScript exporter is compared key by key). PEFT writes target_modules as list(set), whose order
depends on Python's string hashing; the goldens store it sorted, and the comparison treats it as a set.

Set-up (what the engine must reproduce to match):
  * LoRA: r=4, lora_alpha=8 (scaling alpha/r = 2), lora_dropout=0, PEFT's default target_modules for the
    model_type, init_lora_weights=True: lora_A kaiming-uniform(a=sqrt(5)) drawn after torch.manual_seed(SEED), lora_B
    zeros. The drawn A values are written into the JSON so the engine starts from exactly them.
  * The base model runs in float64 (weights upcast exactly from the fixture's f32), eager attention, eval mode:
    GPT-2's attn/resid/embd dropouts (0.1 in its config) are off, as the engine has no base-model dropout.
  * Loss: the issue-4 contract, computed here from the logits: logits at t predict labels[t+1]; sum of cross-entropies
    over every t with labels[t+1] != -100, divided by the count of such t over the whole batch (token-weighted).
    transformers' own loss (model(labels=...)) is computed too and asserted equal to f32 precision (it casts the
    logits to float32): with no num_items_in_batch it is the same definition. The golden keeps the float64 loss,
    which is also the one back-propagated.
  * Optimiser: torch.optim.AdamW(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0) on the LoRA parameters only,
    constant learning rate (no warmup, no decay), torch.nn.utils.clip_grad_norm_(params, 1.0) before every step;
    "grad_norm" is the norm it returns (before clipping). 10 steps, each on the whole batch.

BATCHING: every step is one micro-batch holding every row. Rows are right-padded to the longest row with input id
PAD_ID, label -100 and attention_mask 0. Right padding under a causal mask means no real position ever attends to a
pad, and position ids are 0..T-1 for every row, so the real positions' logits are those of the row alone. In the
engine (segment ids instead of an attention mask): give each row its own segment with positions restarting at 0, and
either drop the pads or make them a segment of their own with label -100; both give the same loss and gradients.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import peft
import torch
import transformers
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "tests" / "fixtures" / "models"
OUT = ROOT / "tests" / "fixtures" / "golden"
CONFIG_OUT = ROOT / "src" / "train" / "golden"

FIXTURES = ("gpt2", "llama", "qwen3")
SEED = 1234
STEPS = 10
LR = 1e-3
R, ALPHA = 4, 8
PAD_ID = 0
# (length, prompt positions): the first `prompt` labels are -100, as a completion-only chat row would have.
ROW_SHAPES = ((12, 4), (9, 3), (7, 0))


def f32(values) -> list[float]:
    """Shortest decimal strings that round-trip float32: small JSON, exact when parsed back into a Float32Array."""
    return [float(str(np.float32(v))) for v in np.asarray(values, dtype=np.float64).reshape(-1)]


def save_adapter_fixture(model, adapter_dir, name: str, sorted_keys: tuple[str, ...] = ()) -> None:
    """PEFT's save_pretrained of `model` (float32) as a committed fixture: base_model_name_or_path repo-relative (this
    machine's absolute path is useless in the repo), the list-valued `sorted_keys` sorted (PEFT writes sets in any
    order), the keys sorted, no model card."""
    if adapter_dir.exists():
        shutil.rmtree(adapter_dir)
    model.to(torch.float32).save_pretrained(adapter_dir)
    cfg_path = adapter_dir / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = f"tests/fixtures/models/{name}"
    for key in sorted_keys:
        cfg[key] = sorted(cfg[key])
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True))
    (adapter_dir / "README.md").unlink(missing_ok=True)  # PEFT's model-card template: noise in the repo


def rows_for(vocab_size: int, seed: int) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    rows = []
    for length, prompt in ROW_SHAPES:
        ids = torch.randint(1, vocab_size, (length,), generator=g).tolist()
        labels = [-100] * prompt + ids[prompt:]
        rows.append({"input_ids": ids, "labels": labels})
    return rows


def pad_batch(rows: list[dict]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    T = max(len(r["input_ids"]) for r in rows)
    ids = torch.full((len(rows), T), PAD_ID, dtype=torch.long)
    labels = torch.full((len(rows), T), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), T), dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r["input_ids"])
        ids[i, :n] = torch.tensor(r["input_ids"])
        labels[i, :n] = torch.tensor(r["labels"])
        mask[i, :n] = 1
    return ids, labels, mask


def contract_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Issue 4's loss: token-weighted mean CE of logits[:, t] against labels[:, t+1] over labels != -100."""
    shift_logits = logits[:, :-1, :].reshape(-1, logits.shape[-1])
    shift_labels = labels[:, 1:].reshape(-1)
    keep = shift_labels != -100
    total = torch.nn.functional.cross_entropy(shift_logits[keep], shift_labels[keep], reduction="sum")
    count = int(keep.sum())
    return total / count, count


def lora_modules(model) -> list[tuple[str, torch.nn.Module]]:
    """(path relative to the *ForCausalLM, LoRA layer) in named_modules order (= forward order)."""
    prefix = "base_model.model."
    out = []
    for name, module in model.named_modules():
        if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
            out.append((name[len(prefix):], module))
    return out


def train_fixture(name: str) -> None:
    model = AutoModelForCausalLM.from_pretrained(MODELS / name, dtype=torch.float32, attn_implementation="eager")
    fan_in_fan_out = model.config.model_type == "gpt2"
    config = LoraConfig(task_type="CAUSAL_LM", r=R, lora_alpha=ALPHA, lora_dropout=0.0, fan_in_fan_out=fan_in_fan_out)
    torch.manual_seed(SEED)
    model = get_peft_model(model, config)
    modules = lora_modules(model)
    initial_A = {path: m.lora_A["default"].weight.detach().clone() for path, m in modules}
    for _, m in modules:
        assert torch.count_nonzero(m.lora_B["default"].weight) == 0
    model = model.to(torch.float64)
    model.eval()  # no dropout anywhere (GPT-2's config has 0.1 dropouts; the engine has none on the base model)

    rows = rows_for(model.config.vocab_size, seed=SEED + len(name))
    ids, labels, mask = pad_batch(rows)
    params = [p for p in model.parameters() if p.requires_grad]
    assert len(params) == 2 * len(modules)
    opt = torch.optim.AdamW(params, lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)

    steps, grads, tokens = [], {}, None
    for step in range(1, STEPS + 1):
        opt.zero_grad(set_to_none=True)
        out = model(input_ids=ids, attention_mask=mask, labels=labels)
        loss, tokens = contract_loss(out.logits, labels)
        # transformers' own loss (no num_items_in_batch: a mean over the non-ignored shifted labels) is the same
        # definition; it casts the logits to float32 first, hence the f32-sized tolerance.
        assert abs(out.loss.item() - loss.item()) < 1e-6 * loss.item(), (out.loss.item(), loss.item())
        loss.backward()
        if step in (1, 2):
            grads[str(step)] = {
                path: {"dA": f32(m.lora_A["default"].weight.grad), "dB": f32(m.lora_B["default"].weight.grad)}
                for path, m in modules
            }
        if step == 1:
            assert all(torch.count_nonzero(m.lora_A["default"].weight.grad) == 0 for _, m in modules)
        norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        steps.append({"step": step, "loss": loss.item(), "grad_norm": norm.item(), "lr": LR})
    with torch.no_grad():
        final_loss, _ = contract_loss(model(input_ids=ids, attention_mask=mask).logits, labels)

    golden = {
        "fixture": name,
        "reference": f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}",
        "dtype": "float64",
        "lora": {"r": R, "lora_alpha": ALPHA, "lora_dropout": 0.0, "scaling": ALPHA / R,
                 "target_modules": sorted(model.peft_config["default"].target_modules),
                 "fan_in_fan_out": fan_in_fan_out, "init_seed": SEED},
        "optimizer": {"name": "AdamW", "lr": LR, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0,
                      "schedule": "constant", "warmup_steps": 0, "max_grad_norm": 1.0},
        "batching": ("one micro-batch of every row per step; right-padded with input id "
                     f"{PAD_ID}, label -100, attention_mask 0; positions 0..T-1 per row"),
        "rows": rows,
        "tokens": tokens,
        "modules": [
            {"path": path, "in": m.in_features, "out": m.out_features, "A0": f32(initial_A[path])}
            for path, m in modules
        ],
        "steps": steps,
        "final_loss": float(final_loss),
        "grads": grads,
    }
    (OUT / f"train_{name}.json").write_text(json.dumps(golden) + "\n")

    adapter_dir = OUT / f"train_{name}_adapter"
    save_adapter_fixture(model, adapter_dir, name, sorted_keys=("target_modules",))
    losses = ", ".join(f"{s['loss']:.4f}" for s in steps)
    print(f"{name}: {len(modules)} LoRA modules, {tokens} trained tokens, losses {losses} → {float(final_loss):.4f}")


# --- adapter_config.json goldens ------------------------------------------------------------------------------------

CONFIG_CASES = {
    # case: (fixture, LoraConfig kwargs)
    "gpt2-default": ("gpt2", dict(r=4, lora_alpha=8, lora_dropout=0.0)),
    "llama-default": ("llama", dict(r=8, lora_alpha=16, lora_dropout=0.0)),
    "llama-all-linear-rslora": ("llama", dict(r=8, lora_alpha=16, lora_dropout=0.05, target_modules="all-linear",
                                              use_rslora=True)),
    "llama-list": ("llama", dict(r=2, lora_alpha=3, lora_dropout=0.1, target_modules=["v_proj", "q_proj", "o_proj"])),
}


def write_config_goldens(tmp: Path) -> None:
    CONFIG_OUT.mkdir(parents=True, exist_ok=True)
    for case, (fixture, kwargs) in CONFIG_CASES.items():
        # A repo-relative path, so base_model_name_or_path is the same on every machine.
        model = AutoModelForCausalLM.from_pretrained(f"tests/fixtures/models/{fixture}", dtype=torch.float32)
        wrapped = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **kwargs))
        wrapped.save_pretrained(tmp / case)
        cfg = json.loads((tmp / case / "adapter_config.json").read_text())
        if isinstance(cfg["target_modules"], list):
            cfg["target_modules"] = sorted(cfg["target_modules"])
        (CONFIG_OUT / f"adapter_config.{case}.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def main() -> None:
    import os
    import tempfile

    os.chdir(ROOT)
    torch.use_deterministic_algorithms(True)
    with tempfile.TemporaryDirectory() as tmp:
        write_config_goldens(Path(tmp))
    for name in FIXTURES:
        train_fixture(name)


if __name__ == "__main__":
    main()
