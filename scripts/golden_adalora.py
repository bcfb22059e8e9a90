"""Golden AdaLoRA training runs, produced by the real PEFT + transformers + torch (the set-up of golden_train.py).

    .venv-ref/bin/python scripts/golden_adalora.py        # after scripts/make_fixtures.py

Writes, for each fixture in FIXTURES:

  tests/fixtures/golden/train_adalora_<fixture>.json
    {
      "fixture", "reference", "dtype": "float64",
      "adalora": {"init_r", "target_r", "tinit", "tfinal", "deltaT", "beta1", "beta2", "orth_reg_weight",
                  "total_step", "lora_alpha", "target_modules", "fan_in_fan_out", "init_seed"},
      "optimizer": {... as golden_train.py},
      "rows", "tokens",
      "modules": [{"path", "in", "out", "A0": initial lora_A [r, in], "B0": initial lora_B [out, r]}],  # lora_E = 0
      "steps": [{"step", "loss": CE + orth_reg_weight·R (PEFT's outputs.loss), "ce": the contract loss alone,
                 "grad_norm", "lr"} × 10],
      "final_loss": the contract loss (no regulariser) after the 10th step,
      "grads": {"1": {path: {"dA", "dE", "dB"}}, "2": {...}},   # raw gradients (before clipping), flattened
      "rank_patterns": {"<step>": {path: [bool × init_r]}},     # after every step that masked by scores
      "rank_pattern": {path: [bool × init_r]}                   # the final one (the saved config's)
    }

  tests/fixtures/golden/train_adalora_<fixture>_adapter/   the adapter after 10 steps, PEFT's save_pretrained

AdaLoRA: AdaLoraConfig(task_type="CAUSAL_LM", init_r, target_r, tinit, tfinal, deltaT, total_step = 10, lora_alpha,
lora_dropout 0, fan_in_fan_out for GPT-2) with PEFT's default targets; lora_A and lora_B normal(0, 0.02) drawn by PEFT
after torch.manual_seed(SEED), lora_E = 0. The model then runs in float64, eval mode; the loss is PEFT's forward (the
issue-4 contract loss, which transformers' own loss equals, plus orth_reg_weight × the orthogonality regulariser).
AdamW(lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0) on lora_A, lora_E and lora_B with clip_grad_norm_(1.0),
constant lr, 10 steps, each on the whole batch, in the order PEFT documents: backward → clip → optimizer step →
update_and_allocate(global_step) → zero_grad, global_step = the 1-based number of the step just made. The schedule
(init_r 6 → target_r 2, tinit 2, tfinal 3, deltaT 2 over 10 steps) masks by scores after steps 4 and 6, fixes the
final pattern after step 7, and re-applies it after steps 8–10.
"""

from __future__ import annotations

import json

import peft
import torch
import transformers
from peft import AdaLoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from golden_train import MODELS, OUT, ROOT, SEED, STEPS, contract_loss, f32, pad_batch, rows_for, save_adapter_fixture

FIXTURES = ("gpt2", "llama", "qwen3")
LR = 1e-2  # large enough that 10 steps move the scores the budget step ranks
SCHEDULE = dict(init_r=6, target_r=2, tinit=2, tfinal=3, deltaT=2, total_step=STEPS, beta1=0.85, beta2=0.85,
                orth_reg_weight=0.5, lora_alpha=8)


def adalora_modules(model) -> list[tuple[str, torch.nn.Module]]:
    prefix = "base_model.model."
    return [(name[len(prefix):], m) for name, m in model.named_modules()
            if hasattr(m, "lora_E") and "default" in getattr(m, "lora_E", {})]


def orth_regulariser(model) -> torch.Tensor:
    """AdaLoraModel.forward's regulariser, its code: the mean over every lora_A and lora_B of ‖AAᵀ − I‖_F, ‖BᵀB − I‖_F."""
    total, n = 0, 0
    for name, p in model.base_model.model.named_parameters():
        if ("lora_A" in name or "lora_B" in name) and "default" in name:
            cov = p @ p.T if "lora_A" in name else p.T @ p
            total = total + torch.norm(cov - torch.eye(*cov.size(), dtype=cov.dtype), p="fro")
            n += 1
    return total / n


def pattern_by_path(rank_pattern: dict) -> dict:
    """PEFT's rank_pattern keys ("model.layers.0.self_attn.q_proj.lora_E.default") by module path."""
    return {k.split(".lora_E")[0]: [bool(b) for b in v] for k, v in rank_pattern.items()}


def train_fixture(name: str) -> None:
    model = AutoModelForCausalLM.from_pretrained(MODELS / name, dtype=torch.float32, attn_implementation="eager")
    fan_in_fan_out = model.config.model_type == "gpt2"
    config = AdaLoraConfig(task_type="CAUSAL_LM", lora_dropout=0.0, fan_in_fan_out=fan_in_fan_out, **SCHEDULE)
    torch.manual_seed(SEED)
    model = get_peft_model(model, config)
    modules = adalora_modules(model)
    A0 = {p: m.lora_A["default"].detach().clone() for p, m in modules}
    B0 = {p: m.lora_B["default"].detach().clone() for p, m in modules}
    for _, m in modules:
        assert torch.count_nonzero(m.lora_E["default"]) == 0
        assert m.ranknum["default"].item() == SCHEDULE["init_r"]
    model = model.to(torch.float64)
    model.eval()

    rows = rows_for(model.config.vocab_size, seed=SEED + len(name))
    ids, labels, mask = pad_batch(rows)
    params = [p for p in model.parameters() if p.requires_grad]
    assert len(params) == 3 * len(modules)
    opt = torch.optim.AdamW(params, lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)

    steps, grads, patterns, tokens = [], {}, {}, None
    for step in range(1, STEPS + 1):
        out = model(input_ids=ids, attention_mask=mask, labels=labels)
        ce, tokens = contract_loss(out.logits, labels)
        # PEFT's outputs.loss is transformers' loss (from f32-cast logits) + orth_reg_weight · R, added in place into
        # that f32 tensor; the same sum in float64 is back-propagated, asserted equal to it at f32 precision.
        loss = ce + SCHEDULE["orth_reg_weight"] * orth_regulariser(model)
        assert abs(out.loss.item() - loss.item()) < 1e-6 * loss.item(), (out.loss.item(), loss.item())
        loss.backward()
        if step in (1, 2):
            grads[str(step)] = {
                p: {"dA": f32(m.lora_A["default"].grad), "dE": f32(m.lora_E["default"].grad),
                    "dB": f32(m.lora_B["default"].grad)}
                for p, m in modules
            }
        norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        before = model.peft_config["default"].rank_pattern
        model.base_model.update_and_allocate(step)
        after = model.peft_config["default"].rank_pattern
        if after is not None and after is not before and step <= STEPS - SCHEDULE["tfinal"]:
            patterns[str(step)] = pattern_by_path(after)
        opt.zero_grad(set_to_none=True)
        steps.append({"step": step, "loss": loss.item(), "ce": ce.item(), "grad_norm": norm.item(), "lr": LR})
    with torch.no_grad():
        final_loss, _ = contract_loss(model(input_ids=ids, attention_mask=mask).logits, labels)
    final_pattern = pattern_by_path(model.peft_config["default"].rank_pattern)

    golden = {
        "fixture": name,
        "reference": f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}",
        "dtype": "float64",
        "adalora": {**SCHEDULE, "target_modules": sorted(model.peft_config["default"].target_modules),
                    "fan_in_fan_out": fan_in_fan_out, "init_seed": SEED},
        "optimizer": {"name": "AdamW", "lr": LR, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0,
                      "schedule": "constant", "warmup_steps": 0, "max_grad_norm": 1.0},
        "rows": rows,
        "tokens": tokens,
        "modules": [{"path": p, "in": m.in_features, "out": m.out_features, "A0": f32(A0[p]), "B0": f32(B0[p])}
                    for p, m in modules],
        "steps": steps,
        "final_loss": float(final_loss),
        "grads": grads,
        "rank_patterns": patterns,
        "rank_pattern": final_pattern,
    }

    save_adapter_fixture(model, OUT / f"train_adalora_{name}_adapter", name, sorted_keys=("target_modules",))

    # PEFT's merge of the saved (float32) adapter: the merge rule's reference.
    path = modules[0][0]
    merged = model.merge_and_unload()
    golden["merged"] = {"path": path, "weight": f32(merged.get_submodule(path).weight.detach())}
    (OUT / f"train_adalora_{name}.json").write_text(json.dumps(golden) + "\n")
    losses = ", ".join(f"{s['loss']:.4f}" for s in steps)
    ranks = {p: sum(v) for p, v in final_pattern.items()}
    print(f"adalora {name}: {len(modules)} modules, {tokens} tokens, losses {losses} → {float(final_loss):.4f}; ranks {ranks}")


def main() -> None:
    import os

    os.chdir(ROOT)
    torch.use_deterministic_algorithms(True)
    for name in FIXTURES:
        train_fixture(name)


if __name__ == "__main__":
    main()
