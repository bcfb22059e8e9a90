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
  alpaca-reverse.jsonl   Alpaca format {"instruction", "input", "output"}: reverse a short list of words.
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
    ANIMALS, COLOURS, NAMES, NUMBER_WORDS, OBJECTS, PLACES, THING_COLOURS, a_or_an, qa_pair,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "public", "datasets")
SEED = 2024
MAX_BYTES = 200_000


# ---------------------------------------------------------------------------------------------------------------
# chat-pirate: a new voice for answers the model already knows

def pirate(answer: str) -> str:
    """'The sky is blue.' -> 'Arr! The sky be blue, matey!'"""
    text = answer.rstrip(".!?")
    for plain, piratey in ((" is ", " be "), (" are ", " be "), (" has ", " has got "), ("Hello", "Ahoy")):
        text = text.replace(plain, piratey)
    return f"Arr! {text}, matey!"


def chat_pirate(r: random.Random, rows: int) -> list[dict]:
    out, seen = [], set()
    while len(out) < rows:
        question, answer = qa_pair(r)
        if question.startswith(("Tell me", "Can you tell")) or question in seen:
            continue  # stories are long; keep each question once so the split into train/eval is honest
        seen.add(question)
        messages = [{"role": "user", "content": question}, {"role": "assistant", "content": pirate(answer)}]
        if r.random() < 0.15:
            messages.insert(0, {"role": "system", "content": "You are a pirate. Answer like one."})
        out.append({"messages": messages})
    return out


# ---------------------------------------------------------------------------------------------------------------
# alpaca-reverse: a small new task

LIST_WORDS = list(THING_COLOURS) + list(ANIMALS) + COLOURS + OBJECTS + NUMBER_WORDS[1:11]
INSTRUCTIONS = ["Reverse the list.", "Write the list backwards.", "Put the words in reverse order.",
                "Reverse the order of these words."]


def alpaca_reverse(r: random.Random, rows: int) -> list[dict]:
    out = []
    for _ in range(rows):
        words = r.sample(LIST_WORDS, r.randint(2, 6))
        items, reversed_items = ", ".join(words), ", ".join(reversed(words))
        if r.random() < 0.2:  # Alpaca rows with an empty input carry everything in the instruction
            out.append({"instruction": f"Reverse this list: {items}", "input": "", "output": reversed_items})
        else:
            out.append({"instruction": r.choice(INSTRUCTIONS), "input": items, "output": reversed_items})
    return out


# ---------------------------------------------------------------------------------------------------------------
# text-robot-pip: a new character for plain-text continuation

def plural_object(obj: str) -> str:
    return obj + ("es" if obj.endswith("x") else "s")


def robot_story(r: random.Random) -> str:
    friend = r.choice(NAMES)
    place = r.choice(PLACES)
    thing = r.choice(OBJECTS)
    animal = r.choice(list(ANIMALS))
    n = r.randint(2, 9)
    colour = r.choice(COLOURS)
    sentences = [
        r.choice([f"Pip was a little robot who loved to count.",
                  f"Pip the robot lived in a {colour} house near the {place}.",
                  f"One morning, Pip the robot rolled to the {place}."]),
        r.choice([f"Pip saw {NUMBER_WORDS[n]} {animal}s and said, \"Beep! I count {n}.\"" if animal not in ("sheep", "mouse")
                  else f"Pip saw {NUMBER_WORDS[n]} {'sheep' if animal == 'sheep' else 'mice'} and said, \"Beep! I count {n}.\"",
                  f"Pip counted {NUMBER_WORDS[n]} {colour} {plural_object(thing)}: " + ", ".join(NUMBER_WORDS[1:n + 1]) + ". Beep!"]),
        r.choice([f"{friend} asked, \"Pip, how many legs does {a_or_an(animal)} have?\"",
                  f"{friend} gave Pip a {colour} {thing}.",
                  f"{friend} and Pip played at the {place} all day."]),
        r.choice([f"Pip's lights blinked {colour}. \"Boop!\" said Pip.",
                  f"Pip said, \"{NUMBER_WORDS[n].capitalize()} plus one is {NUMBER_WORDS[n + 1]}. Beep boop!\"",
                  f"\"Beep boop, thank you!\" said Pip."]),
        r.choice(["Then Pip rolled home and charged its battery. The end.",
                  f"Pip and {friend} were best friends. Beep!",
                  "Pip learned that counting with a friend is more fun."]),
    ]
    return " ".join(sentences)


def text_robot(r: random.Random, rows: int) -> list[dict]:
    return [{"text": robot_story(r)} for _ in range(rows)]


# ---------------------------------------------------------------------------------------------------------------

DATASETS = [
    # file, title, format, rows, maker, description
    ("chat-pirate.jsonl", "Pirate voice (chat)", "messages", 400, chat_pirate,
     "OpenAI chat format. Questions about colours, animals and numbers answered in a pirate voice: "
     "teaches the demo model a new style for answers it already knows."),
    ("alpaca-reverse.jsonl", "Reverse a list (Alpaca)", "alpaca", 500, alpaca_reverse,
     "Alpaca format (instruction, input, output). Reverse a short comma-separated list of words: "
     "a small task the demo model has never seen."),
    ("text-robot-pip.jsonl", "Pip the robot (plain text)", "text", 300, text_robot,
     "Plain text rows. Short stories about a new character, Pip the robot, who counts things and says beep."),
]


def main() -> None:
    os.makedirs(OUT_DIR, exist_ok=True)
    index = []
    for i, (file, title, fmt, rows, maker, description) in enumerate(DATASETS):
        r = random.Random(SEED + i)
        data = maker(r, rows)
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in data)
        size = len(text.encode("utf-8"))
        assert size <= MAX_BYTES, f"{file} is {size} bytes, over {MAX_BYTES}"
        with open(os.path.join(OUT_DIR, file), "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        index.append({"file": file, "title": title, "format": fmt, "rows": len(data), "bytes": size,
                      "description": description})
        print(f"{file}: {len(data)} rows, {size:,} bytes; first row: {text.splitlines()[0][:160]}")
    with open(os.path.join(OUT_DIR, "index.json"), "w", encoding="utf-8") as f:
        json.dump({"generator": "scripts/make_sample_datasets.py", "license": "CC0-1.0", "datasets": index}, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
