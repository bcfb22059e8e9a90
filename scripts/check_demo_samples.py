"""Does the demo model visibly learn each sample dataset? The same check as src/train/demo-samples.gpu.test.ts, in
transformers + PEFT on CPU: for tuning the demo model (scripts/pretrain_demo.py), the sample datasets
(scripts/make_sample_datasets.py) and the Quick preset (src/train/presets.ts) together without a GPU. The defaults are
the Quick preset's, its learning rate scaled to the model's width as presets.ts's presetLr does.

Run:  .venv-ref/bin/python scripts/check_demo_samples.py [--model DIR] [--lr 1e-3] [--rank 4] ...

For each dataset in public/datasets/index.json: the base model's greedy answers to the held-out prompts, then a LoRA
run (PEFT, one epoch of the training rows, batch 4, AdamW, cosine with 3% warmup, gradient clipping at 1: the
trainer's defaults) and the adapter's greedy answers. The rows are encoded as the studio encodes them
(src/data/encode.ts): chat rows through the ChatML template with only the assistant turn (and its <|im_end|>)
trained, Alpaca rows as one user turn "instruction\\n\\ninput", text rows with every token trained and no EOS.

A held-out answer passes when:
  messages  it begins with "Arr!", ends with "matey!" and contains the expected word (the colour, sound, number…)
  alpaca    it is exactly the reversed list (trimmed: the sample writes its lists with a leading space)
  text      the continuation mentions Pip and "beep" or "boop"
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
from peft import LoraConfig, get_peft_model  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IM_END = "<|im_end|>"
MAX_NEW_TOKENS = {"messages": 32, "alpaca": 32, "text": 48}


def chat_prompt(tok, messages: list[dict]) -> str:
    return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def encode_row(tok, fmt: str, row: dict) -> tuple[list[int], list[int]]:
    """(input_ids, labels) with -100 on untrained tokens, as src/data/encode.ts builds them."""
    enc = lambda text: tok(text, add_special_tokens=False).input_ids  # noqa: E731
    if fmt == "text":
        ids = enc(row["text"])
        return ids, list(ids)
    if fmt == "alpaca":
        user = row["instruction"] if row["input"].strip() == "" else f"{row['instruction']}\n\n{row['input']}"
        messages = [{"role": "user", "content": user}, {"role": "assistant", "content": row["output"]}]
    else:
        messages = row["messages"]
    prompt = enc(chat_prompt(tok, messages[:-1]))
    completion = enc(messages[-1]["content"]) + enc(IM_END)
    return prompt + completion, [-100] * len(prompt) + completion


def prompt_ids(tok, fmt: str, prompt: str) -> list[int]:
    if fmt == "text":
        return tok(prompt, add_special_tokens=False).input_ids
    return tok(chat_prompt(tok, [{"role": "user", "content": prompt}]), add_special_tokens=False).input_ids


def passes(fmt: str, answer: str, expect: list[str]) -> bool:
    a = answer.strip()
    if fmt == "messages":
        return a.startswith("Arr!") and a.endswith("matey!") and all(e.lower() in a.lower() for e in expect)
    if fmt == "alpaca":
        return a == expect[0]
    low = a.lower()
    return "pip" in low and ("beep" in low or "boop" in low)


@torch.no_grad()
def answers(model, tok, fmt: str, held: list[dict]) -> list[str]:
    model.eval()
    out = []
    for h in held:
        ids = torch.tensor([prompt_ids(tok, fmt, h["prompt"])])
        gen = model.generate(ids, max_new_tokens=MAX_NEW_TOKENS[fmt], do_sample=False, eos_token_id=[2, 0],
                             pad_token_id=0)
        out.append(tok.decode(gen[0, ids.shape[1]:], skip_special_tokens=True))
    return out


QUICK_LR_AT_REFERENCE, REFERENCE_HIDDEN, MAX_PRESET_LR = 2e-4, 4096, 1e-2  # src/train/presets.ts


def preset_lr(lr_at_reference: float, hidden: int) -> float:
    """src/train/presets.ts's presetLr: the rate at hidden 4096 times 4096 / hidden, never below it, capped."""
    scaled = float(f"{lr_at_reference * max(1.0, REFERENCE_HIDDEN / hidden):.2g}")
    return min(max(lr_at_reference, MAX_PRESET_LR), scaled)


def lr_multiplier(step: int, warmup: int, total: int) -> float:
    """transformers' cosine schedule with warmup (src/train/schedule.ts)."""
    if step < warmup:
        return step / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return max(0.0, 0.5 * (1 + math.cos(math.pi * progress)))


def train_lora(model, tok, fmt: str, rows: list[dict], args) -> tuple[object, list[float]]:
    targets = args.targets.split(",")
    peft_model = get_peft_model(model, LoraConfig(r=args.rank, lora_alpha=args.alpha, lora_dropout=args.dropout,
                                                  target_modules=targets))
    encoded = [encode_row(tok, fmt, row) for row in rows]
    order = list(range(len(encoded)))
    params = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=args.weight_decay)
    batches_per_epoch = math.ceil(len(encoded) / args.batch)
    total = args.steps or batches_per_epoch * args.epochs
    warmup = math.ceil(total * 0.03)
    losses, step, epoch = [], 0, 0
    peft_model.train()
    while step < total:
        random.Random(args.seed + epoch).shuffle(order)
        for b in range(batches_per_epoch):
            if step >= total:
                break
            batch = [encoded[i] for i in order[b * args.batch:(b + 1) * args.batch]]
            width = max(len(ids) for ids, _ in batch)
            x = torch.tensor([ids + [0] * (width - len(ids)) for ids, _ in batch])
            y = torch.tensor([labels + [-100] * (width - len(labels)) for _, labels in batch])
            mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch])
            loss = peft_model(input_ids=x, attention_mask=mask, labels=y).loss
            for g in opt.param_groups:
                g["lr"] = args.lr * lr_multiplier(step, warmup, total)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            losses.append(loss.item())
            step += 1
        epoch += 1
    return peft_model, losses


@torch.no_grad()
def answer_loss(model, tok, fmt: str, rows: list[dict]) -> float:
    """Mean loss per trained token over the first 64 rows (the issue's "10.5 nats on the answers")."""
    model.eval()
    total, count = 0.0, 0
    for row in rows[:64]:
        ids, labels = encode_row(tok, fmt, row)
        out = model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels]))
        n = sum(1 for t in labels[1:] if t != -100)
        total += out.loss.item() * n
        count += n
    return total / count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(ROOT, "public", "models", "demo-llama"))
    ap.add_argument("--datasets", default=os.path.join(ROOT, "public", "datasets"))
    ap.add_argument("--only", default=None, help="one dataset file")
    ap.add_argument("--rank", type=int, default=4)
    ap.add_argument("--alpha", type=float, default=8)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--targets", default="q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj", help="Quick: all-linear")
    ap.add_argument("--lr", type=float, default=None, help="default: Quick's, scaled to the model (preset_lr)")
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--show", type=int, default=4, help="answers to print per dataset")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)

    index = json.load(open(os.path.join(args.datasets, "index.json")))
    tok = AutoTokenizer.from_pretrained(args.model)
    if args.lr is None:
        hidden = json.load(open(os.path.join(args.model, "config.json")))["hidden_size"]
        args.lr = preset_lr(QUICK_LR_AT_REFERENCE, hidden)
        print(f"lr {args.lr:g} (Quick's {QUICK_LR_AT_REFERENCE:g} at hidden {REFERENCE_HIDDEN}, scaled to {hidden})")
    for d in index["datasets"]:
        if args.only and d["file"] != args.only:
            continue
        fmt, held = d["format"], d["heldOut"]
        rows = [json.loads(line) for line in open(os.path.join(args.datasets, d["file"]))]
        model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
        base_loss = answer_loss(model, tok, fmt, rows)
        base = answers(model, tok, fmt, held)
        t = time.time()
        tuned_model, losses = train_lora(model, tok, fmt, rows, args)
        seconds = time.time() - t
        tuned_loss = answer_loss(tuned_model, tok, fmt, rows)
        tuned = answers(tuned_model, tok, fmt, held)
        base_ok = sum(passes(fmt, a, h["expect"]) for a, h in zip(base, held))
        tuned_ok = sum(passes(fmt, a, h["expect"]) for a, h in zip(tuned, held))
        print(f"== {d['file']}: {len(losses)} steps ({seconds:.0f}s), train loss {losses[0]:.2f} -> "
              f"{sum(losses[-10:]) / len(losses[-10:]):.2f}; loss on the answers {base_loss:.2f} -> {tuned_loss:.2f}; "
              f"held-out passing: base {base_ok}/{len(held)}, adapter {tuned_ok}/{len(held)}")
        for h, a, b in list(zip(held, base, tuned))[:args.show]:
            print(f"   {h['prompt']!r}\n      base    {a!r}\n      adapter {b!r}")


if __name__ == "__main__":
    main()
