"""Golden forward outputs of the model fixtures, computed by transformers' own model classes.

    .venv-ref/bin/python scripts/golden_models.py       # after scripts/make_fixtures.py

For each tests/fixtures/models/<name>/ writes tests/fixtures/golden/<name>.json:

    {
      "fixture": "llama", "reference": "...", "vocab_size": V,
      "rows": [ { "input_ids": [T ints], "labels": [T ints, -100 = ignored],
                  "logits": [T][V] (7 significant digits), "loss": mean CE of this row, "tokens": n }, ... ],
      "loss": token-weighted loss over both rows, "tokens": N,
      "parameters": {name: shape} of model.named_parameters() (a tied lm_head appears once, as the embedding),
      "peft": {"default": [...], "all-linear": [...]}: the module paths LoraConfig's default target_modules and
              "all-linear" wrap, per peft itself, relative to the *ForCausalLM (without "base_model.model.")
    }

The loss contract (issue 4): logits at position t predict labels[t+1]; the loss is the sum of cross-entropies over
every t with labels[t+1] != -100 divided by the number of such positions, over the whole micro-batch (not a mean of
per-row means). Labels align with input_ids (transformers' convention; the shift happens inside the loss).

The model runs in float64 (weights stored as F16/BF16 are upcast exactly), eager attention, each row on its own (no
padding), so the golden is the exact forward of the stored weights; the engine's f32/f16 results are compared to it
with a declared tolerance. The loss is computed twice, by transformers (labels=) and by hand from the logits, and the
two must agree (to f32 precision: transformers computes its loss in float32; the golden keeps the float64 one).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import peft
import torch
import transformers
from peft import LoraConfig, get_peft_model
from transformers import AutoConfig, AutoModelForCausalLM

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "tests" / "fixtures" / "models"
OUT = ROOT / "tests" / "fixtures" / "golden"

ROW_LENGTHS = (11, 16)


def round7(x: float) -> float:
    return float(f"{x:.7g}")


def peft_modules(name: str, target_modules) -> list[str]:
    """The module paths peft wraps with LoRA for `target_modules` (None = peft's default for the model_type)."""
    model = AutoModelForCausalLM.from_pretrained(MODELS / name, dtype=torch.float32)
    config = LoraConfig(r=2, target_modules=target_modules, fan_in_fan_out=model.config.model_type == "gpt2")
    wrapped = get_peft_model(model, config)
    prefix = "base_model.model."
    paths = {k[len(prefix):].removesuffix(".lora_A.default") for k, _ in wrapped.named_modules() if k.endswith(".lora_A.default")}
    return sorted(paths)


def rows_for(vocab_size: int, seed: int) -> list[tuple[list[int], list[int]]]:
    """Two rows of random ids. Row 0 masks a 4-token prompt (labels[0..3] = -100); row 1 masks two inner positions."""
    rnd = random.Random(seed)
    rows = []
    for r, length in enumerate(ROW_LENGTHS):
        ids = [rnd.randrange(vocab_size) for _ in range(length)]
        labels = list(ids)
        if r == 0:
            labels[:4] = [-100] * 4
        else:
            labels[6] = -100
            labels[11] = -100
        rows.append((ids, labels))
    return rows


@torch.no_grad()
def golden(name: str) -> dict:
    path = MODELS / name
    config = AutoConfig.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float64, attn_implementation="eager")
    model.eval()
    out_rows = []
    total_ce, total_tokens = 0.0, 0
    for ids, labels in rows_for(config.vocab_size, seed=1234):
        input_ids = torch.tensor([ids])
        out = model(input_ids=input_ids, labels=torch.tensor([labels]))
        logits = out.logits[0]  # (T, V) float64
        # By hand, per the contract: position t predicts labels[t+1].
        targets = torch.tensor(labels[1:])
        mask = targets != -100
        ce = torch.nn.functional.cross_entropy(logits[:-1][mask], targets[mask], reduction="sum").item()
        n = int(mask.sum())
        row_loss = ce / n
        # transformers' ForCausalLMLoss upcasts logits to float32, hence the f32-level agreement.
        assert abs(row_loss - out.loss.item()) <= 1e-6 * max(1.0, abs(row_loss)), (name, row_loss, out.loss.item())
        total_ce += ce
        total_tokens += n
        out_rows.append({
            "input_ids": ids,
            "labels": labels,
            "logits": [[round7(v) for v in row] for row in logits.tolist()],
            "loss": round7(row_loss),
            "tokens": n,
        })
    return {
        "fixture": name,
        "reference": f"transformers {transformers.__version__} {type(model).__name__}, torch {torch.__version__}, "
                     "float64, eager attention, one row at a time",
        "vocab_size": config.vocab_size,
        "rows": out_rows,
        "loss": round7(total_ce / total_tokens),
        "tokens": total_tokens,
        "parameters": {k: list(p.shape) for k, p in model.named_parameters()},
        "peft": {"default": peft_modules(name, None), "all-linear": peft_modules(name, "all-linear")},
        "versions": {"transformers": transformers.__version__, "peft": peft.__version__, "torch": torch.__version__},
    }


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for path in sorted(MODELS.iterdir()):
        if not (path / "config.json").exists():
            continue
        result = golden(path.name)
        (OUT / f"{path.name}.json").write_text(json.dumps(result, separators=(",", ":")) + "\n")
        print(f"{path.name}: loss {result['loss']} over {result['tokens']} tokens")


if __name__ == "__main__":
    main()
