"""Golden full fine-tuning runs, produced by transformers + torch (the same set-up as golden_train.py).

    .venv-ref/bin/python scripts/golden_full.py        # after scripts/make_fixtures.py

Writes, for each fixture in FIXTURES:

  tests/fixtures/golden/train_full_<fixture>.json
    {
      "fixture", "reference" (library versions), "dtype": "float64",
      "optimizer": {"name": "AdamW", "lr": LR, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": WD,
                    "decay_rule": "ndim>=2", "schedule": "constant", "warmup_steps": 0, "max_grad_norm": 1.0},
      "tied": whether lm_head shares the input embedding table,
      "tied_parameter": the name the shared table goes by in named_parameters() (e.g. "transformer.wte.weight"),
                        null when untied,
      "rows", "tokens",                  # as golden_train.py
      "parameters": [{"name": HF name as named_parameters() yields it, "shape": [...], "decay": bool}],
      "steps": [{"step", "loss", "grad_norm", "lr"} × 10],
      "final_loss",
      "grads": {"1": {name: flattened raw gradient (before clipping), row-major in torch's own layout}}
    }

  tests/fixtures/golden/train_full_<fixture>_model/   the model after 10 steps, save_pretrained in float32 (the
                                                       fixture's storage dtype), when the folder stays under
                                                       MODEL_LIMIT bytes; no tokenizer files.

Set-up (what the engine must reproduce to match):
  * Every parameter of the *ForCausalLM is trainable, in the order named_parameters() yields them. A tied lm_head
    is not a parameter of its own: named_parameters() yields the shared table once, under the embedding's name, and
    its gradient is the sum of the embedding's and the head's. The layout is torch's: GPT-2's Conv1D weights are
    [in, out], nn.Linear weights [out, in], embeddings [vocab, hidden].
  * The model runs in float64 (weights upcast exactly from the fixture's f32), eager attention, eval mode (GPT-2's
    0.1 dropouts off). Rows, right padding and the loss: golden_train.py's (issue-4 contract, token-weighted).
  * Optimiser: torch.optim.AdamW(lr=LR, betas=(0.9, 0.999), eps=1e-8) with two parameter groups: weight_decay=WD on
    every parameter with ndim >= 2 (matrices and embedding tables, position embeddings included), 0 on the 1-D ones
    (biases, norm weights) — the product's rule "decay on matrices only, not on norms and biases". torch's AdamW
    decays decoupled: p <- p * (1 - lr * wd) before the Adam update. clip_grad_norm_(every parameter, 1.0) before
    every step; "grad_norm" is the norm it returns (before clipping). Constant lr, 10 steps, each on the whole batch.
"""

from __future__ import annotations

import json
import shutil

import torch
import transformers
from transformers import AutoModelForCausalLM

from golden_train import MODELS, OUT, ROOT, SEED, STEPS, contract_loss, f32, pad_batch, rows_for

FIXTURES = ("gpt2", "llama", "qwen3")
LR = 1e-3
WD = 0.1  # large enough that the decay is visible in the trajectory (0.01 would hide in f32 noise after 10 steps)
MODEL_LIMIT = 300_000  # bytes: the saved model folder is committed only below this


def folder_size(path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def train_fixture(name: str) -> None:
    model = AutoModelForCausalLM.from_pretrained(MODELS / name, dtype=torch.float32, attn_implementation="eager")
    model = model.to(torch.float64)
    model.eval()  # no dropout anywhere (GPT-2's config has 0.1 dropouts; the engine has none)

    named = list(model.named_parameters())  # a tied table appears once
    head = model.get_output_embeddings().weight
    emb = model.get_input_embeddings().weight
    tied = head is emb
    assert tied == bool(model.config.tie_word_embeddings), (name, tied, model.config.tie_word_embeddings)
    tied_parameter = next(n for n, p in named if p is emb) if tied else None
    if tied:
        assert not any(n == "lm_head.weight" for n, _ in named)
    for _, p in named:
        p.requires_grad_(True)

    decay = [p for _, p in named if p.ndim >= 2]
    no_decay = [p for _, p in named if p.ndim < 2]
    params = [p for _, p in named]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": WD}, {"params": no_decay, "weight_decay": 0.0}],
        lr=LR, betas=(0.9, 0.999), eps=1e-8,
    )

    rows = rows_for(model.config.vocab_size, seed=SEED + len(name))
    ids, labels, mask = pad_batch(rows)

    steps, grads, tokens = [], {}, None
    for step in range(1, STEPS + 1):
        opt.zero_grad(set_to_none=True)
        out = model(input_ids=ids, attention_mask=mask, labels=labels)
        loss, tokens = contract_loss(out.logits, labels)
        assert abs(out.loss.item() - loss.item()) < 1e-6 * loss.item(), (out.loss.item(), loss.item())
        loss.backward()
        if step == 1:
            grads["1"] = {n: f32(p.grad) for n, p in named}
        norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        steps.append({"step": step, "loss": loss.item(), "grad_norm": norm.item(), "lr": LR})
    with torch.no_grad():
        final_loss, _ = contract_loss(model(input_ids=ids, attention_mask=mask).logits, labels)

    golden = {
        "fixture": name,
        "reference": f"torch {torch.__version__}, transformers {transformers.__version__}",
        "dtype": "float64",
        "optimizer": {"name": "AdamW", "lr": LR, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": WD,
                      "decay_rule": "ndim>=2", "schedule": "constant", "warmup_steps": 0, "max_grad_norm": 1.0},
        "tied": tied,
        "tied_parameter": tied_parameter,
        "rows": rows,
        "tokens": tokens,
        "parameters": [{"name": n, "shape": list(p.shape), "decay": p.ndim >= 2} for n, p in named],
        "steps": steps,
        "final_loss": float(final_loss),
        "grads": grads,
    }
    path = OUT / f"train_full_{name}.json"
    path.write_text(json.dumps(golden, separators=(",", ":")) + "\n")

    model_dir = OUT / f"train_full_{name}_model"
    if model_dir.exists():
        shutil.rmtree(model_dir)
    model.to(torch.float32).save_pretrained(model_dir)
    size = folder_size(model_dir)
    kept = size < MODEL_LIMIT
    if not kept:
        shutil.rmtree(model_dir)
    losses = ", ".join(f"{s['loss']:.4f}" for s in steps)
    n_values = sum(p.numel() for p in params)
    print(f"full {name}: {len(named)} parameters ({n_values} values), tied={tied}, {tokens} trained tokens, "
          f"losses {losses} → {float(final_loss):.4f}; json {path.stat().st_size} B; "
          f"model folder {size} B {'kept' if kept else 'skipped (over the limit)'}")


def main() -> None:
    import os

    os.chdir(ROOT)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    for name in FIXTURES:
        train_fixture(name)


if __name__ == "__main__":
    main()
