"""Golden IA³ training runs, produced by the real PEFT + transformers + torch (the same set-up as golden_train.py).

    .venv-ref/bin/python scripts/golden_ia3.py        # after scripts/make_fixtures.py

Writes, for each fixture in FIXTURES:

  tests/fixtures/golden/train_ia3_<fixture>.json
    {
      "fixture", "reference", "dtype": "float64",
      "ia3": {"target_modules": PEFT's default for the model_type (sorted), "feedforward_modules", "fan_in_fan_out"},
      "optimizer": {... as golden_train.py, lr LR},
      "rows", "tokens",
      "modules": [{"path", "in", "out", "feedforward": bool, "length": len(ia3_l)}],
      "steps": [{"step", "loss", "grad_norm", "lr"} × 10],
      "final_loss",
      "grads": {"1": {path: [dl...]}, "2": {...}}      # raw gradients of ia3_l (before clipping), flattened
    }

  tests/fixtures/golden/train_ia3_<fixture>_adapter/   the adapter after 10 steps, PEFT's save_pretrained (the import
                                                       and live-load tests read it)

IA³: IA3Config(task_type="CAUSAL_LM") with PEFT's default target and feed-forward modules; every ia3_l starts at 1
(init_ia3_weights=True), so there are no random initial values to copy. The base runs in float64, eval mode; the loss
is the issue-4 contract; AdamW(lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0) on the IA³ vectors with
clip_grad_norm_(1.0), constant lr, 10 steps, each on the whole batch (rows of golden_train.py's shapes, right-padded).
"""

from __future__ import annotations

import json

import peft
import torch
import transformers
from peft import IA3Config, get_peft_model
from transformers import AutoModelForCausalLM

from golden_train import MODELS, OUT, ROOT, SEED, STEPS, contract_loss, f32, pad_batch, rows_for, save_adapter_fixture

FIXTURES = ("gpt2", "llama", "qwen3")
# IA³ trains ~100× fewer parameters than LoRA: a larger step, so 10 steps move the loss visibly.
LR = 1e-2


def ia3_modules(model) -> list[tuple[str, torch.nn.Module]]:
    prefix = "base_model.model."
    return [(name[len(prefix):], m) for name, m in model.named_modules() if hasattr(m, "ia3_l") and "default" in m.ia3_l]


def train_fixture(name: str) -> None:
    model = AutoModelForCausalLM.from_pretrained(MODELS / name, dtype=torch.float32, attn_implementation="eager")
    model = get_peft_model(model, IA3Config(task_type="CAUSAL_LM"))
    modules = ia3_modules(model)
    for _, m in modules:
        assert torch.all(m.ia3_l["default"] == 1)
    model = model.to(torch.float64)
    model.eval()

    rows = rows_for(model.config.vocab_size, seed=SEED + len(name))
    ids, labels, mask = pad_batch(rows)
    params = [p for p in model.parameters() if p.requires_grad]
    assert len(params) == len(modules)
    opt = torch.optim.AdamW(params, lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)

    steps, grads, tokens = [], {}, None
    for step in range(1, STEPS + 1):
        opt.zero_grad(set_to_none=True)
        out = model(input_ids=ids, attention_mask=mask, labels=labels)
        loss, tokens = contract_loss(out.logits, labels)
        assert abs(out.loss.item() - loss.item()) < 1e-6 * loss.item(), (out.loss.item(), loss.item())
        loss.backward()
        if step in (1, 2):
            grads[str(step)] = {path: f32(m.ia3_l["default"].grad) for path, m in modules}
        norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        steps.append({"step": step, "loss": loss.item(), "grad_norm": norm.item(), "lr": LR})
    with torch.no_grad():
        final_loss, _ = contract_loss(model(input_ids=ids, attention_mask=mask).logits, labels)

    cfg = model.peft_config["default"]
    golden = {
        "fixture": name,
        "reference": f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}",
        "dtype": "float64",
        "ia3": {"target_modules": sorted(cfg.target_modules), "feedforward_modules": sorted(cfg.feedforward_modules),
                "fan_in_fan_out": cfg.fan_in_fan_out},
        "optimizer": {"name": "AdamW", "lr": LR, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0,
                      "schedule": "constant", "warmup_steps": 0, "max_grad_norm": 1.0},
        "rows": rows,
        "tokens": tokens,
        "modules": [
            {"path": path, "in": m.in_features, "out": m.out_features, "feedforward": bool(m.is_feedforward),
             "length": int(m.ia3_l["default"].numel())}
            for path, m in modules
        ],
        "steps": steps,
        "final_loss": float(final_loss),
        "grads": grads,
    }
    (OUT / f"train_ia3_{name}.json").write_text(json.dumps(golden) + "\n")

    adapter_dir = OUT / f"train_ia3_{name}_adapter"
    save_adapter_fixture(model, adapter_dir, name, sorted_keys=("target_modules", "feedforward_modules"))
    losses = ", ".join(f"{s['loss']:.4f}" for s in steps)
    print(f"ia3 {name}: {len(modules)} modules, {tokens} trained tokens, losses {losses} → {float(final_loss):.4f}")


def main() -> None:
    import os

    os.chdir(ROOT)
    torch.use_deterministic_algorithms(True)
    for name in FIXTURES:
        train_fixture(name)


if __name__ == "__main__":
    main()
