"""Golden prefix-tuning (P-tuning v2) runs, produced by the real PEFT + transformers + torch (the set-up of
golden_prompt.py).

    .venv-ref/bin/python scripts/golden_prefix.py        # after scripts/make_fixtures.py

Writes, for each (fixture, projection) in CASES:

  tests/fixtures/golden/train_prefix_<fixture>[_proj].json
    {
      "fixture", "reference", "dtype": "float64", "method": "prefix",
      "num_virtual_tokens", "prefix_projection", "encoder_hidden_size" (with the projection), "token_dim",
      "num_layers", "num_attention_heads" (PEFT's, the key/value heads for a GQA model),
      "optimizer": {... as golden_train.py, lr LR},
      "rows", "tokens",
      "initial": {name: [values...]}     # PEFT's random init, flattened f32: "prompt_embeddings" (the embedding table,
                                         # N(0, 1): (P, L·2·token_dim), or (P, token_dim) with the projection), and
                                         # with the projection "transform.<i>.weight|bias"
      "steps": [{"step", "loss", "grad_norm", "lr"} × 10],
      "final_loss",
      "grads": {"1": {name: [...]}, "2": {...}}   # raw gradients (before clipping), flattened, same names
      "prefix": [...]                    # the (P, L·2·token_dim) key/value table after the 10 steps (what PEFT saves)
      "trained": {name: [values...]}     # with the projection: every tensor after the 10 steps, same names (the
                                         # export's projection is checked against PEFT's saved table from them)
    }

  tests/fixtures/golden/train_prefix_<fixture>[_proj]_adapter/   the adapter after 10 steps, PEFT's save_pretrained

PEFT's causal-LM prefix tuning: the table is viewed (P, L·2, heads, token_dim / heads) and handed to the model as
past_key_values (layer l: keys row 2l, values row 2l + 1, no RoPE: they enter the cache as given); the attention
mask gets ones ahead; position ids are left to the model, which counts them from the cache's length, so the real
tokens start at position P (GPT-2's learned positions and RoPE alike). The logits are the real tokens' only, and the
loss is the issue-4 contract over the rows' own labels, asserted equal to PEFT's out.loss. The base runs in float64,
eval mode; AdamW(lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0) with clip_grad_norm_(1.0), constant lr, 10
steps on the whole (right-padded) batch.
"""

from __future__ import annotations

import json

import peft
import torch
import transformers
from peft import PrefixTuningConfig, get_peft_model
from transformers import AutoModelForCausalLM

from golden_train import MODELS, OUT, ROOT, SEED, STEPS, contract_loss, f32, pad_batch, rows_for, save_adapter_fixture

# gpt2: learned positions, plain table; llama: GQA (2 of 4 heads, head_dim 8), through the projection; qwen3: GQA with
# q/k norms and head_dim ≠ hidden / heads, plain table.
CASES = (("gpt2", False), ("llama", True), ("qwen3", False))
N_VIRTUAL = 4
ENCODER_HIDDEN = 24
LR = 1e-2


def case_name(fixture: str, projection: bool) -> str:
    return f"prefix_{fixture}_proj" if projection else f"prefix_{fixture}"


def trainables(model) -> list[tuple[str, torch.nn.Parameter]]:
    enc = model.prompt_encoder["default"]
    out = [("prompt_embeddings", enc.embedding.weight)]
    if enc.prefix_projection:
        for i, layer in enumerate(enc.transform):
            if isinstance(layer, torch.nn.Linear):
                out += [(f"transform.{i}.weight", layer.weight), (f"transform.{i}.bias", layer.bias)]
    return out


def train_case(name: str, projection: bool) -> None:
    torch.manual_seed(SEED)
    base = AutoModelForCausalLM.from_pretrained(MODELS / name, dtype=torch.float32, attn_implementation="eager")
    extra = {"prefix_projection": True, "encoder_hidden_size": ENCODER_HIDDEN} if projection else {}
    model = get_peft_model(base, PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=N_VIRTUAL, **extra))
    cfg = model.active_peft_config
    named = trainables(model)
    initial = {n: f32(p.detach()) for n, p in named}
    model = model.to(torch.float64)
    model.eval()

    rows = rows_for(model.config.vocab_size, seed=SEED + len(name))
    ids, labels, mask = pad_batch(rows)
    params = [p for p in model.parameters() if p.requires_grad]
    assert len(params) == len(named), (len(params), len(named))
    opt = torch.optim.AdamW(params, lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)

    steps, grads, tokens = [], {}, None
    for step in range(1, STEPS + 1):
        opt.zero_grad(set_to_none=True)
        out = model(input_ids=ids, attention_mask=mask, labels=labels)
        assert out.logits.shape[1] == ids.shape[1]
        loss, tokens = contract_loss(out.logits, labels)
        assert abs(out.loss.item() - loss.item()) < 1e-6 * loss.item(), (out.loss.item(), loss.item())
        loss.backward()
        if step in (1, 2):
            grads[str(step)] = {n: f32(p.grad) for n, p in named}
        norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        steps.append({"step": step, "loss": loss.item(), "grad_norm": norm.item(), "lr": LR})
    with torch.no_grad():
        final_loss, _ = contract_loss(model(input_ids=ids, attention_mask=mask).logits, labels)
        prefix = model.get_prompt_embedding_to_save("default")

    golden = {
        "fixture": name,
        "reference": f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}",
        "dtype": "float64",
        "method": "prefix",
        "num_virtual_tokens": N_VIRTUAL,
        "prefix_projection": projection,
        "token_dim": cfg.token_dim,
        "num_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "optimizer": {"name": "AdamW", "lr": LR, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0,
                      "schedule": "constant", "warmup_steps": 0, "max_grad_norm": 1.0},
        "rows": rows,
        "tokens": tokens,
        "initial": initial,
        "steps": steps,
        "final_loss": float(final_loss),
        "grads": grads,
        "prefix": f32(prefix),
    }
    if projection:
        golden["encoder_hidden_size"] = ENCODER_HIDDEN
        golden["trained"] = {n: f32(p.detach()) for n, p in named}
    (OUT / f"train_{case_name(name, projection)}.json").write_text(json.dumps(golden) + "\n")

    save_adapter_fixture(model, OUT / f"train_{case_name(name, projection)}_adapter", name)
    losses = ", ".join(f"{s['loss']:.4f}" for s in steps)
    print(f"{case_name(name, projection)}: {tokens} trained tokens, losses {losses} → {float(final_loss):.4f}")


def main() -> None:
    import os

    os.chdir(ROOT)
    torch.use_deterministic_algorithms(True)
    for name, projection in CASES:
        train_case(name, projection)


if __name__ == "__main__":
    main()
