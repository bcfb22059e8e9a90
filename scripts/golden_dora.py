"""Golden DoRA training runs, produced by the real PEFT + transformers + torch (the same set-up as golden_train.py).

    .venv-ref/bin/python scripts/golden_dora.py        # after scripts/make_fixtures.py

Writes, for each fixture in FIXTURES:

  tests/fixtures/golden/train_dora_<fixture>.json
    {
      "fixture", "reference", "dtype": "float64",
      "lora": {"r", "lora_alpha", "lora_dropout": 0.0, "scaling", "use_dora": true, "target_modules",
               "fan_in_fan_out", "init_seed"},
      "optimizer": {... as golden_train.py},
      "rows", "tokens",
      "modules": [{"path", "in", "out", "A0": initial lora_A, "m0": initial lora_magnitude_vector}],
      "steps": [{"step", "loss", "grad_norm", "lr"} × 10],
      "final_loss",
      "grads": {"1": {path: {"dA", "dB", "dm"}}, "2": {...}},     # raw gradients (before clipping), flattened
      "merged": {"path", "weight"}       # the first module's weight after merge_and_unload (as stored: Conv1D [in, out])
    }

  tests/fixtures/golden/train_dora_<fixture>_adapter/   the adapter after 10 steps, PEFT's save_pretrained

DoRA: LoraConfig(task_type="CAUSAL_LM", r=R, lora_alpha=ALPHA, lora_dropout=0, use_dora=True, fan_in_fan_out for
GPT-2) with PEFT's default LoRA targets; lora_A from torch.manual_seed(SEED) as golden_train.py, lora_B = 0, and
lora_magnitude_vector = ‖W‖ per output row (computed by PEFT in float32 when it wraps the model). The model then runs in
float64, eval mode; the loss is the issue-4 contract; AdamW(lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0) on
A, B and m with clip_grad_norm_(1.0), constant lr, 10 steps, each on the whole batch.
"""

from __future__ import annotations

import json

import peft
import torch
import transformers
from peft import LoraConfig, get_peft_model
from peft.optimizers import create_loraplus_optimizer
from transformers import AutoModelForCausalLM

from golden_train import ALPHA, MODELS, OUT, R, ROOT, SEED, STEPS, contract_loss, f32, lora_modules, pad_batch, rows_for, save_adapter_fixture

FIXTURES = ("gpt2", "llama", "qwen3")
LR = 1e-3
# A LoRA+ run too (llama): PEFT's create_loraplus_optimizer puts B and every 1-D parameter (the magnitudes) at
# lr × ratio, A at lr — the grouping our optimizer must reproduce.
LORAPLUS = ("llama", 16.0)


def train_fixture(name: str, loraplus: float | None = None) -> None:
    model = AutoModelForCausalLM.from_pretrained(MODELS / name, dtype=torch.float32, attn_implementation="eager")
    fan_in_fan_out = model.config.model_type == "gpt2"
    config = LoraConfig(task_type="CAUSAL_LM", r=R, lora_alpha=ALPHA, lora_dropout=0.0, use_dora=True,
                        fan_in_fan_out=fan_in_fan_out)
    torch.manual_seed(SEED)
    model = get_peft_model(model, config)
    modules = lora_modules(model)
    initial_A = {path: m.lora_A["default"].weight.detach().clone() for path, m in modules}
    initial_m = {path: m.lora_magnitude_vector["default"].weight.detach().clone() for path, m in modules}
    for path, m in modules:
        assert torch.count_nonzero(m.lora_B["default"].weight) == 0
        w = m.get_base_layer().weight
        w = w.T if fan_in_fan_out else w
        assert torch.allclose(initial_m[path], torch.linalg.norm(w, dim=1), rtol=1e-6)
    model = model.to(torch.float64)
    model.eval()

    rows = rows_for(model.config.vocab_size, seed=SEED + len(name))
    ids, labels, mask = pad_batch(rows)
    params = [p for p in model.parameters() if p.requires_grad]
    assert len(params) == 3 * len(modules)
    if loraplus is None:
        opt = torch.optim.AdamW(params, lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    else:
        opt = create_loraplus_optimizer(model, torch.optim.AdamW, lr=LR, loraplus_lr_ratio=loraplus,
                                        betas=(0.9, 0.999), eps=1e-8)
        assert {g["lr"] for g in opt.param_groups if g["params"]} == {LR, LR * loraplus}

    steps, grads, tokens = [], {}, None
    for step in range(1, STEPS + 1):
        opt.zero_grad(set_to_none=True)
        out = model(input_ids=ids, attention_mask=mask, labels=labels)
        loss, tokens = contract_loss(out.logits, labels)
        assert abs(out.loss.item() - loss.item()) < 1e-6 * loss.item(), (out.loss.item(), loss.item())
        loss.backward()
        if step in (1, 2):
            grads[str(step)] = {
                path: {"dA": f32(m.lora_A["default"].weight.grad), "dB": f32(m.lora_B["default"].weight.grad),
                       "dm": f32(m.lora_magnitude_vector["default"].weight.grad)}
                for path, m in modules
            }
        norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        steps.append({"step": step, "loss": loss.item(), "grad_norm": norm.item(), "lr": LR})
    with torch.no_grad():
        final_loss, _ = contract_loss(model(input_ids=ids, attention_mask=mask).logits, labels)

    golden = {
        "fixture": name,
        "reference": f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}",
        "dtype": "float64",
        "lora": {"r": R, "lora_alpha": ALPHA, "lora_dropout": 0.0, "scaling": ALPHA / R, "use_dora": True,
                 "target_modules": sorted(model.peft_config["default"].target_modules),
                 "fan_in_fan_out": fan_in_fan_out, "init_seed": SEED},
        "optimizer": {"name": "AdamW", "lr": LR, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0,
                      "schedule": "constant", "warmup_steps": 0, "max_grad_norm": 1.0, "loraplus_lr_ratio": loraplus},
        "rows": rows,
        "tokens": tokens,
        "modules": [
            {"path": path, "in": m.in_features, "out": m.out_features, "A0": f32(initial_A[path]),
             "m0": f32(initial_m[path])}
            for path, m in modules
        ],
        "steps": steps,
        "final_loss": float(final_loss),
        "grads": grads,
    }

    suffix = "" if loraplus is None else "_loraplus"
    adapter_dir = OUT / f"train_dora_{name}{suffix}_adapter"
    save_adapter_fixture(model, adapter_dir, name, sorted_keys=("target_modules",))

    # PEFT's merge of the saved (float32) adapter: the merge rule's reference.
    path = modules[0][0]
    merged = model.merge_and_unload()
    golden["merged"] = {"path": path, "weight": f32(merged.get_submodule(path).weight.detach())}
    (OUT / f"train_dora_{name}{suffix}.json").write_text(json.dumps(golden) + "\n")
    losses = ", ".join(f"{s['loss']:.4f}" for s in steps)
    print(f"dora {name}{suffix}: {len(modules)} modules, {tokens} trained tokens, losses {losses} → {float(final_loss):.4f}")


def main() -> None:
    import os

    os.chdir(ROOT)
    torch.use_deterministic_algorithms(True)
    for name in FIXTURES:
        train_fixture(name)
    train_fixture(LORAPLUS[0], loraplus=LORAPLUS[1])


if __name__ == "__main__":
    main()
