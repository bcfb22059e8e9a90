#!/usr/bin/env python3
"""A lora-studio run on TRL's SFTTrainer + PEFT, for one machine or many (accelerate).

Written by `lora-studio export-trl` (or the studio's "Export for a GPU cluster") beside:
  run.json            the run: model, TrainConfig, the PEFT method (LoraConfig kwargs, NF4, LoRA+; none for full
                      fine-tuning), row counts
  data/train.jsonl    {"input_ids", "labels"} rows exactly as the studio trained on them (chat template applied,
                      prompt tokens -100, truncated to max_length); data/eval.jsonl the held-out rows
  data/*.source.jsonl the original JSONL line of each row, in the same order

  python train.py                                                   one machine (a GPU, or the CPU)
  accelerate launch --config_file accelerate/ddp.yaml train.py      many GPUs (fsdp.yaml, deepspeed_zero{2,3}.yaml)

Options: --max-steps N, --output-dir DIR, --model ID_OR_DIR (another path to the same base model),
--precision auto|bf16|fp16|fp32, --gradient-checkpointing, --eval-only [--adapter DIR].

The evaluation loss printed as eval_token_loss is token-weighted over the whole eval set (sum of the next-token
cross-entropy over every position whose label is not -100, divided by their number), the studio's definition;
Trainer's own eval_loss is a mean of batch means and differs from it when rows differ in length. It is computed
before training, during it (eval every N steps, as the run had it) and after it, and written with the rest of the
result to OUTPUT_DIR/lora_studio_result.json. The adapter lands in OUTPUT_DIR (adapter_config.json +
adapter_model.safetensors) and imports into the studio as it is; a full fine-tuning run saves the whole model there
(model.safetensors, config.json, the tokenizer), which from_pretrained loads.
"""
import argparse
import json
import math
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULT_FILE = "lora_studio_result.json"

# The studio's schedules as transformers names them (ours include warmup for every schedule, as these do).
SCHEDULES = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}


def parse_args(run):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=run["model"]["id"], help=f"the base model: a Hub id or a folder (default {run['model']['id']})")
    p.add_argument("--output-dir", default=str(HERE / "output"), help="where the adapter, checkpoints and result go (default ./output)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after N optimizer steps (default: the run's steps or epochs)")
    p.add_argument("--precision", choices=["auto", "bf16", "fp16", "fp32"], default="auto",
                   help="auto: bf16 on a GPU that has it, else fp16 on a GPU, else fp32 (the CPU)")
    p.add_argument("--gradient-checkpointing", action="store_true", help="recompute activations in the backward pass")
    p.add_argument("--eval-only", action="store_true", help="only the token-weighted eval loss of the base (or --adapter)")
    p.add_argument("--adapter", default=None, help="with --eval-only: a PEFT adapter folder to evaluate (e.g. the studio's)")
    args = p.parse_args()
    if args.adapter and not args.eval_only:
        p.error("--adapter is for --eval-only (training starts a new adapter from the run's LoraConfig)")
    if args.adapter and run["method"]["lora"] is None:
        p.error("--adapter: this run is full fine-tuning (no adapter); evaluate a fine-tuned model with --eval-only --model DIR")
    if args.max_steps is not None and args.max_steps < 1:
        p.error(f"--max-steps {args.max_steps}: must be >= 1")
    return args


def resolve_precision(choice, torch):
    if choice != "auto":
        return choice
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def row_loss_sums(logits, labels):
    """(B, T, V) logits, (B, T) labels -> (B, 2): each row's summed next-token cross-entropy and its token count, in
    float64, so the eval loop gathers two numbers per row across processes instead of the logits."""
    import torch

    if isinstance(logits, (tuple, list)):  # the model's other outputs ride along: take the (B, T, V) one
        logits = next(x for x in logits if getattr(x, "ndim", 0) == 3)
    shift_logits = logits[:, :-1, :].float()
    shift_labels = labels[:, 1:]
    mask = shift_labels != -100
    logp = torch.log_softmax(shift_logits, dim=-1)
    nll = -logp.gather(-1, shift_labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    sums = (nll.double() * mask).sum(dim=-1)
    return torch.stack([sums, mask.sum(dim=-1).double()], dim=-1)


def token_loss_metrics(prediction):
    sums = prediction.predictions.reshape(-1, 2)
    tokens = float(sums[:, 1].sum())
    return {"token_loss": float(sums[:, 0].sum()) / tokens if tokens else float("nan"), "tokens": int(tokens)}


def main():
    run = json.loads((HERE / "run.json").read_text())
    args = parse_args(run)

    import torch
    from datasets import load_dataset
    from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoTokenizer, EarlyStoppingCallback, set_seed
    from trl import SFTConfig, SFTTrainer

    cfg = run["config"]
    method = run["method"]
    precision = resolve_precision(args.precision, torch)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]
    set_seed(cfg["seed"])

    files = {"train": str(HERE / "data" / "train.jsonl")}
    has_eval = run["data"]["eval_rows"] > 0
    if has_eval:
        files["eval"] = str(HERE / "data" / "eval.jsonl")
    data = load_dataset("json", data_files=files)

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model_kwargs = {"dtype": dtype}
    quant = method["quantization"]
    if quant is not None:
        from accelerate import PartialState
        from transformers import BitsAndBytesConfig

        model_kwargs["quantization_config"] = BitsAndBytesConfig(**quant, bnb_4bit_compute_dtype=dtype)
        model_kwargs["device_map"] = {"": PartialState().process_index}  # one whole copy per process (DDP)
    model = AutoModelForCausalLM.from_pretrained(args.model, **model_kwargs)
    if quant is not None:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=args.gradient_checkpointing)
    if method["lora"] is None:
        pass  # full fine-tuning: every weight trains; --model points --eval-only at a fine-tuned folder
    elif args.adapter:
        model = PeftModel.from_pretrained(model, args.adapter, is_trainable=True)
    else:
        model = get_peft_model(model, LoraConfig(**method["lora"]))

    steps = args.max_steps if args.max_steps is not None else (cfg["maxSteps"] or -1)
    eval_every = cfg["evalEvery"] if has_eval else 0
    patience = cfg["earlyStoppingPatience"] if eval_every > 0 else 0
    sft = SFTConfig(
        output_dir=args.output_dir,
        max_length=cfg["maxLength"],
        packing=cfg["packing"],
        packing_strategy="bfd",
        eval_packing=False,
        learning_rate=cfg["lr"],
        lr_scheduler_type=SCHEDULES[cfg["schedule"]],
        # A float below 1 is a ratio of the total steps, rounded up, as the studio does.
        warmup_steps=cfg["warmupSteps"] if cfg["warmupSteps"] is not None else cfg["warmupRatio"],
        per_device_train_batch_size=cfg["batchSize"],
        per_device_eval_batch_size=cfg["batchSize"],
        gradient_accumulation_steps=cfg["gradAccum"],
        num_train_epochs=cfg["epochs"],
        max_steps=steps,
        optim="adamw_torch",
        adam_beta1=cfg["beta1"],
        adam_beta2=cfg["beta2"],
        adam_epsilon=cfg["eps"],
        weight_decay=cfg["weightDecay"],
        max_grad_norm=cfg["maxGradNorm"],
        seed=cfg["seed"],
        data_seed=cfg["seed"],
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        # No GPU: the CPU, explicitly, so several processes (torchrun's LOCAL_RANK) make a gloo DDP group.
        use_cpu=not torch.cuda.is_available(),
        gradient_checkpointing=args.gradient_checkpointing,
        eval_strategy="steps" if eval_every > 0 else "no",
        eval_steps=eval_every if eval_every > 0 else None,
        save_strategy="steps",
        save_steps=eval_every if patience > 0 else cfg["checkpointEvery"],
        load_best_model_at_end=patience > 0,
        metric_for_best_model="eval_token_loss" if patience > 0 else None,
        greater_is_better=False if patience > 0 else None,
        # Plain next-token NLL, the studio's loss, with the logits returned (the token-weighted eval reads them);
        # TRL's default "chunked_nll" computes the same loss without keeping logits.
        loss_type="nll",
        logging_steps=1,
        report_to="none",
    )

    optimizers = (None, None)
    if method["loraplus_lr_ratio"] is not None:
        from peft.optimizers import create_loraplus_optimizer

        optimizers = (
            create_loraplus_optimizer(
                model, torch.optim.AdamW, lr=cfg["lr"], loraplus_lr_ratio=method["loraplus_lr_ratio"],
                betas=(cfg["beta1"], cfg["beta2"]), eps=cfg["eps"], weight_decay=cfg["weightDecay"],
            ),
            None,
        )

    trainer = SFTTrainer(
        model=model,
        args=sft,
        train_dataset=data["train"],
        eval_dataset=data["eval"] if has_eval else None,
        processing_class=tokenizer,
        optimizers=optimizers,
        compute_metrics=token_loss_metrics if has_eval else None,
        preprocess_logits_for_metrics=row_loss_sums if has_eval else None,
        callbacks=[EarlyStoppingCallback(early_stopping_patience=patience)] if patience > 0 else None,
    )

    def evaluate():
        if not has_eval:
            return None
        m = trainer.evaluate()
        return {"token_loss": m["eval_token_loss"], "tokens": m["eval_tokens"], "trainer_eval_loss": m["eval_loss"]}

    result = {
        "model": args.model,
        "precision": precision,
        "world_size": trainer.accelerator.num_processes,
        "distributed_type": trainer.accelerator.distributed_type.value,
        "method": method["method"],
    }
    if args.eval_only:
        result["adapter"] = args.adapter
        result["eval"] = evaluate()
    else:
        result["eval_before"] = evaluate()
        out = trainer.train()
        result["global_step"] = trainer.state.global_step
        result["train_loss"] = out.training_loss
        result["losses"] = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        result["eval_after"] = evaluate()
        trainer.save_model(args.output_dir)
    if trainer.accelerator.is_main_process:
        os.makedirs(args.output_dir, exist_ok=True)
        text = json.dumps(result, allow_nan=True)
        (Path(args.output_dir) / RESULT_FILE).write_text(text + "\n")
        print(f"lora-studio result: {text}", flush=True)
        losses = [x for x in result.get("losses", []) if not math.isfinite(x)]
        if losses:
            print(f"train.py: the loss became {losses[0]}", file=sys.stderr)
            sys.exit(1)


if __name__ == "__main__":
    main()
