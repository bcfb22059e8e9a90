"""Writes the sample datasets the studio offers in its Data step, to try fine-tuning without a file of one's own.

Run:  /work/main/.venv-ref/bin/python scripts/make_sample_datasets.py

Writes public/datasets/*.jsonl and public/datasets/index.json. Like the demo model's corpus
(scripts/pretrain_demo.py, whose word lists and facts this reuses), every row is generated here from templates
by a seeded random.Random: no third-party text, so the files carry no licence but ours (CC0), and rerunning
the script rewrites them byte for byte.

Each dataset teaches the bundled demo model (public/models/demo-llama) something it did not see in
pretraining, so a LoRA run visibly changes its answers:

  chat-pirate.jsonl      OpenAI chat format {"messages": [...]}: the questions the demo model already answers,
                         answered in a pirate voice ("Arr! The sky be blue, matey!").
  alpaca-reverse.jsonl   Alpaca format {"instruction", "input", "output"}: reverse a list of three words.
  text-robot-pip.jsonl   Plain {"text"}: short stories about a new character, Pip the robot, who counts things.

Each file stays under 200 KB so it loads instantly and a few epochs train in minutes on a CPU WebGPU driver.
"""

from __future__ import annotations

import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pretrain_demo import (  # noqa: E402
    ANIMALS, COLOURS, GREETINGS, NAMES, NUMBER_WORDS, OBJECTS, PLACES, THING_COLOURS, plural, qa_pair,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "public", "datasets")
SEED = 2024
MAX_BYTES = 200_000


# ---------------------------------------------------------------------------------------------------------------
# Held-out prompts: each dataset keeps a few prompts that no training row contains. The studio offers them as the
# Run screen's sample prompt and in Compare (base vs adapter), and the GPU test that checks "the demo model learns
# each sample" (src/train/demo-samples.gpu.test.ts) decodes them greedily. Each carries what a right answer holds.

def held_out(r: random.Random, make, count: int) -> list[dict]:
    out, seen = [], set()
    while len(out) < count:
        item = make(r)
        if item["prompt"] not in seen:
            seen.add(item["prompt"])
            out.append(item)
    return out


# ---------------------------------------------------------------------------------------------------------------
# chat-pirate: a new voice for answers the model already knows

def pirate(answer: str) -> str:
    """'The sky is blue.' -> 'Arr! The sky be blue, matey!'"""
    text = answer.rstrip(".!?")
    for plain, piratey in ((" is ", " be "), (" are ", " be "), (" has ", " has got "), ("Hello", "Ahoy")):
        text = text.replace(plain, piratey)
    return f"Arr! {text}, matey!"


def pirate_question(r: random.Random) -> dict:
    """A question with a checkable answer, and the words a right answer contains."""
    question, answer = qa_pair(r)
    while question.startswith(("Tell me", "Can you tell", "What is your", "Who are")) or question in GREETINGS:
        question, answer = qa_pair(r)
    words = answer.rstrip(".").split()
    # the colour, sound, home, food or number ends the answer; "A cow has four legs." holds the count before "legs"
    expect = [words[-2] if question.startswith("How many legs") else words[-1]]
    return {"prompt": question, "expect": expect, "answer": pirate(answer)}


def chat_pirate(r: random.Random, rows: int, heldout: list[dict]) -> list[dict]:
    out, seen = [], {h["prompt"] for h in heldout}
    while len(out) < rows:
        question, answer = qa_pair(r)
        if question.startswith(("Tell me", "Can you tell")) or question in seen:
            continue  # stories are long; each question once, and never a held-out one
        seen.add(question)
        messages = [{"role": "user", "content": question}, {"role": "assistant", "content": pirate(answer)}]
        if r.random() < 0.15:
            messages.insert(0, {"role": "system", "content": "You are a pirate. Answer like one."})
        out.append({"messages": messages})
    return out


# ---------------------------------------------------------------------------------------------------------------
# alpaca-reverse: a small new task
#
# Reverse a list of three words from a closed vocabulary whose words are each one token, with or without a leading
# space. The list is written with a leading space (" tomato, black, rock"), in the input and in the output: then every
# word is the same token wherever it stands (" tomato"), so reversing is moving tokens, not also swapping each end
# word for its other spelling ("tomato" where a line starts and " tomato" after a comma are two tokens to the demo
# model). Issue 16, measured in PEFT (scripts/check_demo_samples.py, 30 held-out lists, seeds 1-6): plain lists of
# 2-5 words, 0/30 whatever the rows, rate or rank; leading-space lists of 3-4 words, 18/30 (every four-word list
# loses its first word); of 3 words, 29-30/30 with 400 rows (100 Quick steps); 0/30 for the base model.

LIST_WORDS = list(THING_COLOURS) + list(ANIMALS) + COLOURS + OBJECTS + NUMBER_WORDS[1:11]
LIST_WORDS = sorted(set(LIST_WORDS))
INSTRUCTIONS = ["Reverse the list.", "Write the list backwards.", "Put the words in reverse order.",
                "Reverse the order of these words."]
REVERSE_LENGTH = 3


def spaced_list(words: list[str]) -> str:
    """' tomato, black, rock': the leading space makes the first word the same token as the others."""
    return " " + ", ".join(words)


def reverse_item(r: random.Random) -> dict:
    words = r.sample(LIST_WORDS, REVERSE_LENGTH)
    items, reversed_items = spaced_list(words), spaced_list(words[::-1])
    # The held-out answer is compared trimmed (generation's leading space aside, the list reversed exactly).
    return {"prompt": f"{r.choice(INSTRUCTIONS)}\n\n{items}", "expect": [reversed_items.strip()], "answer": reversed_items,
            "items": items}


def alpaca_reverse(r: random.Random, rows: int, heldout: list[dict]) -> list[dict]:
    out, held = [], {h["items"] for h in heldout}
    while len(out) < rows:
        words = r.sample(LIST_WORDS, REVERSE_LENGTH)
        items = spaced_list(words)
        if items in held:
            continue
        out.append({"instruction": r.choice(INSTRUCTIONS), "input": items, "output": spaced_list(words[::-1])})
    return out


def check_single_tokens(words: list[str]) -> None:
    """Every list word is one token in the demo model's tokenizer, with and without a leading space."""
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(ROOT, "public", "models", "demo-llama", "tokenizer.json"))
    split = [w for w in words if len(tok.encode(w).ids) != 1 or len(tok.encode(" " + w).ids) != 1]
    assert not split, f"not single tokens in the demo model: {split}"


# ---------------------------------------------------------------------------------------------------------------
# text-robot-pip: a new character for plain-text continuation

def plural_object(obj: str) -> str:
    return obj + ("es" if obj.endswith("x") else "s")


def robot_opening(r: random.Random) -> str:
    return r.choice([
        "Pip was a little robot who loved to count.",
        f"Pip the robot lived in a {r.choice(COLOURS)} house near the {r.choice(PLACES)}.",
        f"One morning, Pip the robot rolled to the {r.choice(PLACES)}.",
        f"Pip the robot had {r.choice(COLOURS)} lights and {r.choice(['two', 'three', 'four'])} wheels.",
    ])


def robot_story(r: random.Random, opening: str) -> str:
    friend = r.choice([n for n in NAMES if n != "Pip"])
    place = r.choice(PLACES)
    thing = r.choice(OBJECTS)
    animal = r.choice(list(ANIMALS))
    n = r.randint(2, 6)
    colour = r.choice(COLOURS)
    sentences = [
        opening,
        r.choice([f"Pip saw {NUMBER_WORDS[n]} {plural(animal)} and said, \"Beep! I count {n}.\"",
                  f"Pip counted {NUMBER_WORDS[n]} {colour} {plural_object(thing)}. \"Beep boop!\" said Pip.",
                  f"\"Beep!\" said Pip. \"Hello, {friend}!\""]),
        r.choice([f"{friend} gave Pip a {colour} {thing}. \"Boop!\" said Pip.",
                  f"Pip's lights blinked {colour}. \"Beep boop!\" said Pip.",
                  f"Pip said, \"{NUMBER_WORDS[n].capitalize()} plus one is {NUMBER_WORDS[n + 1]}. Beep!\""]),
        r.choice(["Then Pip rolled home. Beep!", f"Pip and {friend} were best friends. Boop!",
                  "\"Beep boop, good night!\" said Pip."]),
    ]
    return " ".join(sentences)


def pip_item(r: random.Random) -> dict:
    return {"prompt": robot_opening(r), "expect": ["Pip", "beep|boop"], "answer": ""}


def text_robot(r: random.Random, rows: int, heldout: list[dict]) -> list[dict]:
    held = {h["prompt"] for h in heldout}
    out = []
    while len(out) < rows:
        opening = robot_opening(r)
        if opening not in held:
            out.append({"text": robot_story(r, opening)})
    return out


# ---------------------------------------------------------------------------------------------------------------

DATASETS = [
    # file, title, format, rows, maker, held-out maker, description
    ("chat-pirate.jsonl", "Pirate voice (chat)", "messages", 240, chat_pirate, pirate_question,
     "OpenAI chat format. Questions about colours, animals and numbers answered in a pirate voice: "
     "teaches the demo model a new style for answers it already knows."),
    ("alpaca-reverse.jsonl", "Reverse a list (Alpaca)", "alpaca", 400, alpaca_reverse, reverse_item,
     "Alpaca format (instruction, input, output). Reverse a comma-separated list of three words: "
     "a small task the demo model has never seen."),
    ("text-robot-pip.jsonl", "Pip the robot (plain text)", "text", 300, text_robot, pip_item,
     "Plain text rows. Short stories about a new character, Pip the robot, who counts things and says beep."),
]
HELD_OUT = 10


def main() -> None:
    check_single_tokens(LIST_WORDS)
    os.makedirs(OUT_DIR, exist_ok=True)
    index = []
    for i, (file, title, fmt, rows, maker, held_maker, description) in enumerate(DATASETS):
        r = random.Random(SEED + i)
        heldout = held_out(random.Random(SEED + 100 + i), held_maker, HELD_OUT)
        data = maker(r, rows, heldout)
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in data)
        size = len(text.encode("utf-8"))
        assert size <= MAX_BYTES, f"{file} is {size} bytes, over {MAX_BYTES}"
        with open(os.path.join(OUT_DIR, file), "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        index.append({"file": file, "title": title, "format": fmt, "rows": len(data), "bytes": size,
                      "description": description,
                      "heldOut": [{"prompt": h["prompt"], "expect": h["expect"]} for h in heldout]})
        print(f"{file}: {len(data)} rows, {size:,} bytes; first row: {text.splitlines()[0][:160]}")
    with open(os.path.join(OUT_DIR, "index.json"), "w", encoding="utf-8") as f:
        json.dump({"generator": "scripts/make_sample_datasets.py", "license": "CC0-1.0", "datasets": index}, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
