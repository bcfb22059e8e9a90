"""Loads adapters with the real PEFT and reports what it sees: the live check of our exported adapters.

    .venv-ref/bin/python scripts/peft_check.py < jobs.json > results.json

stdin: a JSON list of jobs
    {"base": model folder, "adapter": adapter folder (adapter_config.json + adapter_model.safetensors),
     "merged": optional folder of a merged model written by our mergeModel,
     "rows": [{"input_ids": [...], "labels": [...] (optional, -100 = ignored; defaults to input_ids)}]}
stdout: a JSON list with, per job,
    {"load": {"file_tensors": n, "lora_parameters": n, "matched": n, "missing": [...], "unexpected": [...],
              "mismatched": [...]},        # the file's tensors vs the LoRA weights PeftModel ended up holding
     "base":   {"loss", "tokens"},          # adapter disabled
     "adapter": {"loss", "tokens"},         # PeftModel.from_pretrained(base, adapter)
     "peft_merged": {"loss", "tokens"},     # after merge_and_unload()
     "merged": {"loss", "tokens"},          # our merged folder, when given
     "max_abs_logit_diff": {"adapter_vs_base", "adapter_vs_peft_merged",
                            "merged_vs_adapter", "merged_vs_peft_merged_f16"}}

Prompt-learning adapters (PROMPT_TUNING, P_TUNING): PEFT puts its virtual tokens ahead of each row, so the loss runs
over the labels with −100 ahead (each row's first real token is predicted from the last virtual one) and the logits
compared are the real tokens'; a PREFIX_TUNING adapter adds no token (its table is every layer's past_key_values,
the row's positions start after it), so its loss is the rows' own; "load" compares the file's prompt_embeddings with the prompt table PEFT holds; nothing
merges (no "peft_merged", no "merged"). A job's optional "generate": {"prompt": ids, "max_new_tokens": k} adds
"generated": PEFT's greedy new tokens (model.generate, its virtual tokens prepended as in training).

Everything runs in float64 with eager attention, each row on its own (no padding). Losses follow the issue-4 contract:
logits at t predict labels[t+1], summed cross-entropy over labels[t+1] != -100 divided by their count over all rows.
"merged_vs_peft_merged_f16" compares our merged model with PEFT's merged weights rounded to f16, the storage our
merge writes: it isolates the merge from the f16 rounding that "merged_vs_adapter" also contains.
"""

from __future__ import annotations

import json
import sys
import warnings

import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM
from transformers.utils import logging as hf_logging


def load(folder: str) -> torch.nn.Module:
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float64, attn_implementation="eager")
    return model.eval()


@torch.no_grad()
def run(model, rows, virtual: int = 0) -> tuple[list[torch.Tensor], float, int]:
    """Logits per row (the real tokens'), and the contract loss over all rows. `virtual`: the prompt-learning
    adapter's virtual tokens ahead of each row (labels −100 there)."""
    logits, total, count = [], 0.0, 0
    for row in rows:
        ids = torch.tensor([row["input_ids"]])
        labels = torch.tensor([-100] * virtual + (row.get("labels") or row["input_ids"]))
        out = model(input_ids=ids).logits[0]
        assert out.shape[0] == virtual + ids.shape[1], (out.shape, virtual, ids.shape)
        logits.append(out[virtual:])
        shift = labels[1:]
        keep = shift != -100
        if keep.any():
            total += float(torch.nn.functional.cross_entropy(out[:-1][keep], shift[keep], reduction="sum"))
            count += int(keep.sum())
    return logits, (total / count if count else float("nan")), count


def max_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b))


def check_load(model: PeftModel, adapter_dir: str) -> dict:
    """Every tensor of the file must have landed in an adapter weight of the model (LoRA's A and B, DoRA's
    lora_magnitude_vector, IA³'s ia3_l, AdaLoRA's lora_A, lora_E and lora_B — parameters, not layers),
    with its value."""
    stored = load_file(f"{adapter_dir}/adapter_model.safetensors")
    params = {k: v for k, v in model.state_dict().items()
              if ".lora_A." in k or ".lora_B." in k or ".lora_E." in k or k.endswith(".ia3_l.default")
              or k.endswith(".lora_magnitude_vector.default.weight")}
    matched, missing, unexpected, mismatched = 0, [], [], []
    seen = set()
    for key, value in stored.items():
        # base_model.model.<path>.lora_A.weight → base_model.model.<path>.lora_A.default.weight
        # base_model.model.<path>.ia3_l → base_model.model.<path>.ia3_l.default
        name = key.replace(".lora_A.weight", ".lora_A.default.weight").replace(".lora_B.weight", ".lora_B.default.weight")
        # AdaLoRA: base_model.model.<path>.lora_A (a ParameterDict entry) → base_model.model.<path>.lora_A.default
        if name.endswith((".ia3_l", ".lora_A", ".lora_B", ".lora_E")):
            name += ".default"
        # DoRA: base_model.model.<path>.lora_magnitude_vector → <path>.lora_magnitude_vector.default.weight
        if name.endswith(".lora_magnitude_vector"):
            name += ".default.weight"
        if name not in params:
            unexpected.append(key)
            continue
        seen.add(name)
        if torch.equal(params[name], value.to(params[name].dtype)):
            matched += 1
        else:
            mismatched.append(key)
    missing = sorted(set(params) - seen)
    return {"file_tensors": len(stored), "lora_parameters": len(params), "matched": matched, "missing": missing,
            "unexpected": unexpected, "mismatched": mismatched}


def check_prompt_load(model: PeftModel, adapter_dir: str) -> dict:
    """The file's prompt_embeddings against the prompt table PEFT holds (prompt_encoder.default.embedding)."""
    stored = load_file(f"{adapter_dir}/adapter_model.safetensors")
    table = model.prompt_encoder["default"].embedding.weight
    matched, unexpected, mismatched = 0, [], []
    for key, value in stored.items():
        if key != "prompt_embeddings":
            unexpected.append(key)
        elif torch.equal(table, value.to(table.dtype)):
            matched += 1
        else:
            mismatched.append(key)
    missing = [] if "prompt_embeddings" in stored else ["prompt_embeddings"]
    return {"file_tensors": len(stored), "lora_parameters": 1, "matched": matched, "missing": missing,
            "unexpected": unexpected, "mismatched": mismatched}


def prompt_job(spec: dict, model: PeftModel) -> dict:
    rows = spec["rows"]
    # Prefix tuning adds no token to the sequence (its rows go to every layer's attention as past_key_values).
    prefix = model.active_peft_config.peft_type == "PREFIX_TUNING"
    virtual = 0 if prefix else model.active_peft_config.num_virtual_tokens
    result: dict = {"load": check_prompt_load(model, spec["adapter"])}
    adapter_logits, loss, tokens = run(model, rows, virtual)
    result["adapter"] = {"loss": loss, "tokens": tokens}
    with model.disable_adapter():
        base_logits, loss, tokens = run(model, rows)
    result["base"] = {"loss": loss, "tokens": tokens}
    # Only the real tokens' logits are comparable with the base model's.
    result["max_abs_logit_diff"] = {"adapter_vs_base": max_diff(adapter_logits, base_logits)}
    if spec.get("generate"):
        g = spec["generate"]
        ids = torch.tensor([g["prompt"]])
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=g["max_new_tokens"],
                                 do_sample=False)
        result["generated"] = out[0][ids.shape[1]:].tolist()
    return result


def job(spec: dict) -> dict:
    rows = spec["rows"]
    model = PeftModel.from_pretrained(load(spec["base"]), spec["adapter"])
    model.eval()
    if model.active_peft_config.is_prompt_learning:
        return prompt_job(spec, model)
    result: dict = {"load": check_load(model, spec["adapter"])}
    adapter_logits, loss, tokens = run(model, rows)
    result["adapter"] = {"loss": loss, "tokens": tokens}
    with model.disable_adapter():
        base_logits, loss, tokens = run(model, rows)
    result["base"] = {"loss": loss, "tokens": tokens}
    merged = model.merge_and_unload()
    peft_merged_logits, loss, tokens = run(merged, rows)
    result["peft_merged"] = {"loss": loss, "tokens": tokens}
    diffs = {
        "adapter_vs_base": max_diff(adapter_logits, base_logits),
        "adapter_vs_peft_merged": max_diff(adapter_logits, peft_merged_logits),
    }
    if spec.get("merged"):
        ours = load(spec["merged"])
        our_logits, loss, tokens = run(ours, rows)
        result["merged"] = {"loss": loss, "tokens": tokens}
        diffs["merged_vs_adapter"] = max_diff(our_logits, adapter_logits)
        with torch.no_grad():
            for p in merged.parameters():
                p.copy_(p.to(torch.float16).to(torch.float64))
        diffs["merged_vs_peft_merged_f16"] = max_diff(our_logits, run(merged, rows)[0])
    result["max_abs_logit_diff"] = diffs
    return result


def main() -> None:
    warnings.filterwarnings("ignore")
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    jobs = json.load(sys.stdin)
    json.dump([job(spec) for spec in jobs], sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
