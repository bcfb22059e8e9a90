"""Golden prompt-tuning and P-tuning runs, produced by the real PEFT + transformers + torch (the set-up of
golden_train.py and golden_ia3.py).

    .venv-ref/bin/python scripts/golden_prompt.py        # after scripts/make_fixtures.py

Writes, for each fixture in FIXTURES and each method in METHODS ("prompt" = PromptTuningConfig, "ptuning" =
PromptEncoderConfig with its MLP):

  tests/fixtures/golden/train_<method>_<fixture>.json
    {
      "fixture", "reference", "dtype": "float64", "method",
      "num_virtual_tokens", "encoder_hidden_size" (P-tuning),
      "optimizer": {... as golden_train.py, lr LR},
      "rows", "tokens",
      "initial": {name: [values...]}       # PEFT's random init, flattened f32: "prompt_embeddings" (the embedding
                                           # table, N(0, 1)), for P-tuning also the MLP's "mlp.<i>.weight|bias"
      "steps": [{"step", "loss", "grad_norm", "lr"} × 10],
      "final_loss",
      "grads": {"1": {name: [...]}, "2": {...}}   # raw gradients (before clipping), flattened, same names
      "text_init": {"text", "ids", "prompt_embeddings"}   # prompt tuning only: PromptTuningInit.TEXT's table
    }

  tests/fixtures/golden/train_<method>_<fixture>_adapter/   the adapter after 10 steps, PEFT's save_pretrained

PEFT's causal-LM prompt learning: inputs_embeds = cat(prompt, embed(input_ids)), attention mask ones ahead, labels
−100 ahead, position ids left to the model (0 … n_virtual + T − 1: the real tokens start at position n_virtual). The
loss is the issue-4 contract over those extended labels (so each row's first real token is predicted from the last
virtual token), asserted equal to PEFT's own out.loss. The base runs in float64, eval mode; AdamW(lr=LR,
betas=(0.9, 0.999), eps=1e-8, weight_decay=0) with clip_grad_norm_(1.0), constant lr, 10 steps on the whole batch.
"""

from __future__ import annotations

import json

import peft
import torch
import transformers
from peft import PromptEncoderConfig, PromptTuningConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from golden_train import MODELS, OUT, ROOT, SEED, STEPS, contract_loss, f32, pad_batch, rows_for, save_adapter_fixture

FIXTURES = ("gpt2", "llama", "qwen3")
METHODS = ("prompt", "ptuning")
N_VIRTUAL = 4
ENCODER_HIDDEN = 16
LR = 1e-2
INIT_TEXT = "Answer the question"


def trainables(model, method: str) -> list[tuple[str, torch.nn.Parameter]]:
    enc = model.prompt_encoder["default"]
    out = [("prompt_embeddings", enc.embedding.weight)]
    if method == "ptuning":
        for i, layer in enumerate(enc.mlp_head):
            if isinstance(layer, torch.nn.Linear):
                out += [(f"mlp.{i}.weight", layer.weight), (f"mlp.{i}.bias", layer.bias)]
    return out


def peft_config(method: str):
    if method == "prompt":
        return PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=N_VIRTUAL)
    return PromptEncoderConfig(task_type="CAUSAL_LM", num_virtual_tokens=N_VIRTUAL, encoder_hidden_size=ENCODER_HIDDEN)


def train_fixture(name: str, method: str) -> None:
    torch.manual_seed(SEED)
    base = AutoModelForCausalLM.from_pretrained(MODELS / name, dtype=torch.float32, attn_implementation="eager")
    model = get_peft_model(base, peft_config(method))
    named = trainables(model, method)
    initial = {n: f32(p.detach()) for n, p in named}
    model = model.to(torch.float64)
    model.eval()

    rows = rows_for(model.config.vocab_size, seed=SEED + len(name))
    ids, labels, mask = pad_batch(rows)
    full_labels = torch.cat((torch.full((len(rows), N_VIRTUAL), -100, dtype=torch.long), labels), dim=1)
    params = [p for p in model.parameters() if p.requires_grad]
    assert len(params) == len(named), (len(params), len(named))
    opt = torch.optim.AdamW(params, lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)

    steps, grads, tokens = [], {}, None
    for step in range(1, STEPS + 1):
        opt.zero_grad(set_to_none=True)
        out = model(input_ids=ids, attention_mask=mask, labels=labels)
        assert out.logits.shape[1] == N_VIRTUAL + ids.shape[1]
        loss, tokens = contract_loss(out.logits, full_labels)
        assert abs(out.loss.item() - loss.item()) < 1e-6 * loss.item(), (out.loss.item(), loss.item())
        loss.backward()
        if step in (1, 2):
            grads[str(step)] = {n: f32(p.grad) for n, p in named}
        norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        steps.append({"step": step, "loss": loss.item(), "grad_norm": norm.item(), "lr": LR})
    with torch.no_grad():
        final_loss, _ = contract_loss(model(input_ids=ids, attention_mask=mask).logits, full_labels)

    golden = {
        "fixture": name,
        "reference": f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}",
        "dtype": "float64",
        "method": method,
        "num_virtual_tokens": N_VIRTUAL,
        "optimizer": {"name": "AdamW", "lr": LR, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0,
                      "schedule": "constant", "warmup_steps": 0, "max_grad_norm": 1.0},
        "rows": rows,
        "tokens": tokens,
        "initial": initial,
        "steps": steps,
        "final_loss": float(final_loss),
        "grads": grads,
    }
    if method == "ptuning":
        golden["encoder_hidden_size"] = ENCODER_HIDDEN
    else:
        # PromptTuningInit.TEXT: the word embeddings of tokenizer(text) (special tokens included), cycled to n.
        tok = AutoTokenizer.from_pretrained(MODELS / name)
        text_model = get_peft_model(
            AutoModelForCausalLM.from_pretrained(MODELS / name, dtype=torch.float32),
            PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=N_VIRTUAL + 3, prompt_tuning_init="TEXT",
                               prompt_tuning_init_text=INIT_TEXT, tokenizer_name_or_path=str(MODELS / name)),
        )
        golden["text_init"] = {
            "text": INIT_TEXT,
            "num_virtual_tokens": N_VIRTUAL + 3,
            "ids": tok(INIT_TEXT)["input_ids"],
            "prompt_embeddings": f32(text_model.prompt_encoder["default"].embedding.weight.detach()),
        }
    (OUT / f"train_{method}_{name}.json").write_text(json.dumps(golden) + "\n")

    adapter_dir = OUT / f"train_{method}_{name}_adapter"
    save_adapter_fixture(model, adapter_dir, name)
    losses = ", ".join(f"{s['loss']:.4f}" for s in steps)
    print(f"{method} {name}: {tokens} trained tokens, losses {losses} → {float(final_loss):.4f}")


def main() -> None:
    import os

    os.chdir(ROOT)
    torch.use_deterministic_algorithms(True)
    for method in METHODS:
        for name in FIXTURES:
            train_fixture(name, method)


if __name__ == "__main__":
    main()
