#!/usr/bin/env python3
"""The PyTorch + PEFT peer of the bench's training table (bench/training.ts, issue 10).

The same LoRA training step as ours, in the stack most users would otherwise reach for: a model at the same shape
with random weights (AutoModelForCausalLM.from_config of the config.json the bench builds), PEFT's
get_peft_model(LoraConfig(r=16, lora_alpha=32, target_modules="all-linear")), AdamW over the trainable parameters,
the gradient norm clipped at 1.0, a random token batch with labels = input_ids. Timed by wall clock with
torch.cuda.synchronize() before and after each step; median of the timed steps after the warm-up ones. Two
precisions: fp32 with TF32 off (the arithmetic our f32 engine does) and bf16 autocast over fp32 weights (what a
PyTorch user would run on this GPU).

    python3 bench/torch_peer.py --check            one JSON line: versions and whether CUDA is usable; exit 1 if not
    python3 bench/torch_peer.py SPEC.json          runs the cases of SPEC, prints one JSON line (progress on stderr)

SPEC: {"cases": [{"name", "config": {config.json}, "batch", "seqLen", "method"?}], "warmup": 2, "reps": 5,
       "precisions": ["fp32", "bf16"], "device": "cuda", "lr": 1e-4, "rank": 16, "alpha": 32,
       "targets": "all-linear", "maxGradNorm": 1.0}
Output: {"torch", "transformers", "peft", "device", "results": [{"name", "precision", "ms", "stepsMs",
         "tokensPerSecond", "maxMemoryBytes", "trainableParams", "loss", "buildMs", "attention"} | {"name", "precision", "error"}]}
A case's "method" (the bench's methods table, bench/methods.ts) trains another method of the family instead of the
spec's LoRA: {"id": "lora" | "dora" | "ia3" | "prompt-tuning" | "p-tuning" | "prefix-tuning" | "adalora" | "full",
"rank", "alpha", "targets", "numVirtualTokens", "encoderHiddenSize", "prefixProjection", "initR", "targetR",
"totalStep"} (PEFT's config for it; "full": no adapter, every parameter trains); results then carry its "method".
BENCH_TORCH_DEVICE=cpu runs on the CPU (to try the script on a machine without CUDA; memory is then null).
"""
import contextlib
import gc
import json
import os
import statistics
import sys
import tempfile
import time
import traceback


def log(msg):
    print(f"[torch_peer] {msg}", file=sys.stderr, flush=True)


def check(device):
    out = {"ok": False}
    try:
        import torch

        out["torch"] = torch.__version__
        out["cuda"] = torch.cuda.is_available()
        import transformers
        import peft

        out["transformers"] = transformers.__version__
        out["peft"] = peft.__version__
        if device == "cuda":
            if not torch.cuda.is_available():
                out["error"] = "torch.cuda.is_available() is False"
            else:
                out["device"] = torch.cuda.get_device_name(0)
                out["ok"] = True
        else:
            out["device"] = "cpu"
            out["ok"] = True
    except Exception as err:  # an import error names what is missing
        out["error"] = f"{type(err).__name__}: {err}"
    print(json.dumps(out), flush=True)
    return 0 if out["ok"] else 1


def set_tf32(torch, allowed):
    """TF32 on or off for matmuls and cuDNN. One API only: torch ≥ 2.9 raises when a flag set through one API is read
    through the other ("mix of the legacy and new APIs")."""
    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision"):
        matmul.fp32_precision = "tf32" if allowed else "ieee"
        torch.backends.cudnn.fp32_precision = "tf32" if allowed else "ieee"
    else:
        matmul.allow_tf32 = allowed
        torch.backends.cudnn.allow_tf32 = allowed


def clean_config(cfg):
    """config.json as the bench built it, minus what would change the arithmetic: no stored dtype (fp32 master
    weights in both precisions) and no model dropout (our engine has none; LoRA dropout is 0 on both sides)."""
    cfg = {k: v for k, v in cfg.items() if k not in ("dtype", "torch_dtype", "quantization_config")}
    for k in ("attn_pdrop", "resid_pdrop", "embd_pdrop", "attention_dropout", "hidden_dropout", "summary_first_dropout"):
        if k in cfg:
            cfg[k] = 0.0
    return cfg


def peft_config(method, spec):
    """PEFT's config for a case's method (None: full fine-tuning, no adapter)."""
    import peft

    m = method or {"id": "lora", "rank": spec.get("rank", 16), "alpha": spec.get("alpha", 32), "targets": spec.get("targets", "all-linear")}
    kind = m["id"]
    targets = m.get("targets") or None  # None: PEFT's default modules for the architecture
    if kind in ("lora", "dora"):
        return peft.LoraConfig(r=m["rank"], lora_alpha=m["alpha"], lora_dropout=0.0, target_modules=targets, use_dora=kind == "dora", task_type="CAUSAL_LM")
    if kind == "ia3":
        return peft.IA3Config(target_modules=targets, task_type="CAUSAL_LM")
    if kind == "prompt-tuning":
        return peft.PromptTuningConfig(num_virtual_tokens=m["numVirtualTokens"], task_type="CAUSAL_LM")
    if kind == "p-tuning":
        return peft.PromptEncoderConfig(num_virtual_tokens=m["numVirtualTokens"], encoder_hidden_size=m.get("encoderHiddenSize"), task_type="CAUSAL_LM")
    if kind == "prefix-tuning":
        return peft.PrefixTuningConfig(num_virtual_tokens=m["numVirtualTokens"], prefix_projection=bool(m.get("prefixProjection")), encoder_hidden_size=m.get("encoderHiddenSize"), task_type="CAUSAL_LM")
    if kind == "adalora":
        return peft.AdaLoraConfig(init_r=m["initR"], target_r=m["targetR"], lora_alpha=m["alpha"], target_modules=targets, total_step=m["totalStep"], task_type="CAUSAL_LM")
    if kind == "full":
        return None
    raise ValueError(f"no PyTorch peer for method {kind}")


def run_case(torch, case, spec, device):
    from transformers import AutoConfig, AutoModelForCausalLM
    from peft import get_peft_model

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(clean_config(case["config"]), f)
        config = AutoConfig.from_pretrained(d)
    torch.manual_seed(0)
    with torch.device(device):  # initialised on the GPU: seconds, not the minutes of a CPU init of 0.5B weights
        try:
            model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        except TypeError:  # transformers 4 names it torch_dtype
            model = AutoModelForCausalLM.from_config(config, torch_dtype=torch.float32)
    model.to(device)
    attention = getattr(model.config, "_attn_implementation", None)
    adapter = peft_config(case.get("method"), spec)
    if adapter is not None:
        model = get_peft_model(model, adapter)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    trainable = sum(p.numel() for p in params)
    if device == "cuda":
        torch.cuda.synchronize()
    build_ms = (time.perf_counter() - t0) * 1000
    B, T = case["batch"], case["seqLen"]
    vocab = config.vocab_size
    g = torch.Generator(device="cpu").manual_seed(1)
    ids = torch.randint(1, vocab, (B, T), generator=g).to(device)
    results = []
    for precision in spec.get("precisions", ["fp32", "bf16"]):
        try:
            r = run_precision(torch, model, params, ids, precision, case, spec, device, trainable, build_ms)
            r["attention"] = attention
            if case.get("method"):
                r["method"] = case["method"]["id"]
            results.append(r)
        except Exception as err:
            log(f"{case['name']} {precision}: {traceback.format_exc()}")
            results.append({"name": case["name"], "precision": precision, "error": f"{type(err).__name__}: {err}", **({"method": case["method"]["id"]} if case.get("method") else {})})
        gc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()
    del model, params
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    return results


def run_precision(torch, model, params, ids, precision, case, spec, device, trainable, build_ms):
    set_tf32(torch, False)
    opt = torch.optim.AdamW(params, lr=spec.get("lr", 1e-4))
    clip = spec.get("maxGradNorm", 1.0)
    if precision == "bf16":
        amp = lambda: torch.autocast(device_type=device, dtype=torch.bfloat16)
    elif precision == "fp32":
        amp = contextlib.nullcontext
    else:
        raise ValueError(f"unknown precision {precision}")
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    if device == "cuda":
        sync()
        torch.cuda.reset_peak_memory_stats()
    warmup, reps = spec.get("warmup", 2), spec.get("reps", 5)
    times = []
    loss = None
    # AdaLoRA's budget step belongs to its training step (after the optimizer's, before the gradients go).
    allocate = getattr(getattr(model, "base_model", None), "update_and_allocate", None)
    for i in range(warmup + reps):
        sync()
        t = time.perf_counter()
        with amp():
            out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        if allocate is not None:
            allocate(i)
        opt.zero_grad(set_to_none=True)
        sync()
        times.append((time.perf_counter() - t) * 1000)
        loss = out.loss.item()
        del out
    timed = times[warmup:]
    ms = statistics.median(timed)
    tokens = ids.numel()
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else None
    del opt
    log(f"{case['name']} {precision}: {ms:.1f} ms/step (median of {reps} after {warmup} warm-up), loss {loss:.3f}")
    return {
        "name": case["name"],
        "precision": precision,
        "ms": ms,
        "stepsMs": times,
        "tokensPerSecond": tokens / ms * 1000,
        "maxMemoryBytes": peak,
        "trainableParams": trainable,
        "loss": loss,
        "buildMs": build_ms,
        "float32MatmulPrecision": torch.get_float32_matmul_precision(),
    }


def main(argv):
    device = os.environ.get("BENCH_TORCH_DEVICE", "cuda")
    if argv[1:2] == ["--check"]:
        return check(device)
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        spec = json.load(f)
    device = spec.get("device", device)
    import torch
    import transformers
    import peft

    if device == "cuda" and not torch.cuda.is_available():
        print(json.dumps({"error": "torch.cuda.is_available() is False"}), flush=True)
        return 1
    out = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "results": [],
    }
    for case in spec["cases"]:
        log(f"{case['name']}: building ({case['batch']} × {case['seqLen']} tokens)")
        try:
            out["results"].extend(run_case(torch, case, spec, device))
        except Exception as err:
            log(f"{case['name']}: {traceback.format_exc()}")
            for precision in spec.get("precisions", ["fp32", "bf16"]):
                method = {"method": case["method"]["id"]} if case.get("method") else {}
                out["results"].append({"name": case["name"], "precision": precision, "error": f"{type(err).__name__}: {err}", **method})
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
