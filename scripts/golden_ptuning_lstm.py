"""Golden P-tuning runs with the LSTM reparameterisation (PromptEncoderConfig(encoder_reparameterization_type="LSTM")),
produced by the real PEFT + transformers + torch: golden_prompt.py's P-tuning set-up with PEFT's other prompt encoder,
embedding → nn.LSTM(C, H, num_layers, bidirectional, batch_first) → mlp_head = Linear(2H, 2H) → ReLU → Linear(2H, C).

    .venv-ref/bin/python scripts/golden_ptuning_lstm.py        # after scripts/make_fixtures.py

Writes, for each (fixture, encoder_num_layers) in CASES:

  tests/fixtures/golden/train_ptuning_lstm_<fixture>.json
    {
      "fixture", "reference", "dtype": "float64", "method": "ptuning_lstm",
      "num_virtual_tokens", "encoder_hidden_size", "encoder_num_layers",
      "optimizer", "rows", "tokens",
      "initial": {name: [values...]}       # PEFT's random init, flattened f32, by PEFT's state-dict names under
                                           # prompt_encoder.default: "embedding.weight", "lstm_head.weight_ih_l0", …
                                           # "lstm_head.bias_hh_l<k>_reverse", "mlp_head.0.weight", … "mlp_head.2.bias"
      "steps": [{"step", "loss", "grad_norm", "lr"} × 10],
      "final_loss",
      "grads": {"1": {name: [...]}, "2": {...}}   # raw gradients (before clipping), flattened, same names
    }

  tests/fixtures/golden/train_ptuning_lstm_<fixture>_adapter/   the adapter after 10 steps, PEFT's save_pretrained
                                                               (prompt_embeddings = the encoder's output, as for MLP)

The training contract is golden_prompt.py's (float64, eval mode, AdamW with a 1.0 clip, constant lr, 10 steps on the
whole batch). encoder_dropout is 0: nn.LSTM's dropout between layers draws from torch's RNG, which no one else can
reproduce.
"""

from __future__ import annotations

import json

import peft
import torch
import transformers
from peft import PromptEncoderConfig, get_peft_model
from transformers import AutoModelForCausalLM

from golden_prompt import ENCODER_HIDDEN, LR, N_VIRTUAL
from golden_train import MODELS, OUT, ROOT, SEED, STEPS, contract_loss, f32, pad_batch, rows_for, save_adapter_fixture

# gpt2 with PEFT's default of two stacked layers, llama with one.
CASES = (("gpt2", 2), ("llama", 1))
ENCODER_HIDDEN_LSTM = ENCODER_HIDDEN // 2  # the LSTM's H: mlp_head is 2H wide


def train_fixture(name: str, num_layers: int) -> None:
    torch.manual_seed(SEED)
    base = AutoModelForCausalLM.from_pretrained(MODELS / name, dtype=torch.float32, attn_implementation="eager")
    config = PromptEncoderConfig(task_type="CAUSAL_LM", num_virtual_tokens=N_VIRTUAL, encoder_hidden_size=ENCODER_HIDDEN_LSTM,
                                 encoder_reparameterization_type="LSTM", encoder_num_layers=num_layers, encoder_dropout=0.0)
    model = get_peft_model(base, config)
    enc = model.prompt_encoder["default"]
    assert isinstance(enc.lstm_head, torch.nn.LSTM) and enc.lstm_head.num_layers == num_layers and enc.lstm_head.bidirectional
    named = [(n, p) for n, p in enc.named_parameters()]
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
        "method": "ptuning_lstm",
        "num_virtual_tokens": N_VIRTUAL,
        "encoder_hidden_size": ENCODER_HIDDEN_LSTM,
        "encoder_num_layers": num_layers,
        "optimizer": {"name": "AdamW", "lr": LR, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0,
                      "schedule": "constant", "warmup_steps": 0, "max_grad_norm": 1.0},
        "rows": rows,
        "tokens": tokens,
        "initial": initial,
        "steps": steps,
        "final_loss": float(final_loss),
        "grads": grads,
    }
    (OUT / f"train_ptuning_lstm_{name}.json").write_text(json.dumps(golden) + "\n")
    save_adapter_fixture(model, OUT / f"train_ptuning_lstm_{name}_adapter", name)
    losses = ", ".join(f"{s['loss']:.4f}" for s in steps)
    print(f"ptuning lstm {name} ({num_layers} layer(s)): {tokens} trained tokens, losses {losses} → {float(final_loss):.4f}")


def main() -> None:
    import os

    os.chdir(ROOT)
    torch.use_deterministic_algorithms(True)
    for name, num_layers in CASES:
        train_fixture(name, num_layers)


if __name__ == "__main__":
    main()
