"""Pretrains the studio's bundled demo model from scratch, on CPU, on text generated here.

Run:  /work/main/.venv-ref/bin/python scripts/pretrain_demo.py            # ~20 min of CPU time on one thread
      /work/main/.venv-ref/bin/python scripts/pretrain_demo.py --steps 20 --out /tmp/demo-smoke   # quick check

Writes public/models/demo-llama/ (the Hugging Face layout the studio loads, offline):
  config.json, generation_config.json, model.safetensors (float16), tokenizer.json, tokenizer_config.json, README.md

Why generate the text: the model ships inside the app, so its training data must carry no third-party licence.
Every document below is built from small word lists and sentence templates in this file by a seeded
random.Random, so the corpus is ours (released with the model under CC0) and the run is reproducible:
the same seeds give the same corpus, the same tokenizer and (on the same torch build) the same weights.

What it is for: a new user's first run fine-tunes this model on a sample dataset (scripts/make_sample_datasets.py)
with the studio's Quick preset, and must see the answers change (issue 16). The first version (1.3M parameters,
no regularisation, one answer style) was badly overconfident: 10.5 nats per token on the pirate sample's answers,
single tokens at 24 nats, worse than a uniform guess; a LoRA run could not move it. So:
  - label smoothing (0.1) bounds how far any logit can win; weight decay; early stopping on a held-out split;
  - the corpus is more varied: chat answers come plain, with varied openings and closings, or in one of many
    character voices ("Meow! The sky is blue, meow!"), so a new voice is a small step; little list tasks (copy,
    first/last, which word comes before/after, count down; a third of the chat turns, and list sentences) build the
    skills a list task needs. This model copies a list's words when each keeps one spelling, but not across
    "tomato" where a line starts and " tomato" after a space (two tokens to it): so the alpaca-reverse sample writes
    its lists with a leading space (" tomato, black, rock"), and a Quick epoch then teaches reversing three words
    (plain lists: 0/10 with every rank, rate and step count tried; issue 16). A corpus with twice the list share and
    sentence answers, tried for 2800 steps, learned less (no copying at all);
  - the tokenizer has whole tokens for the samples' new words (TOKENIZER_ONLY_TEXT), which the model never sees.
scripts/check_demo_samples.py measures the result in PEFT; src/train/demo-samples.gpu.test.ts on our engine.

Pipeline:
  1. corpus     80k short documents: templated children's stories, facts about colours/animals/numbers/opposites,
                small arithmetic, list sentences, and chat exchanges in ChatML (<|im_start|>user ... <|im_end|>),
                each document followed by <|endoftext|>.
  2. tokenizer  byte-level BPE (GPT-2 style pre-tokenizer and decoder) trained with the `tokenizers`
                library; ids 0..2 are <|endoftext|>, <|im_start|>, <|im_end|>.
  3. model      transformers' LlamaForCausalLM (RMSNorm, RoPE, SwiGLU, GQA 4 heads / 2 kv heads, tied
                embeddings), ~1.9M parameters, trained with AdamW and label smoothing on random 256-token windows
                of the packed corpus for a fixed number of steps, keeping the weights with the best held-out loss
                (a CPU-time cap stops it early if the machine is slow, and says so).
  4. export     float16 safetensors + tokenizer files + a model card; then a generation sanity check.

torch.set_num_threads(1): the development machine has 2 cores shared with other work.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(ROOT, "public", "models", "demo-llama")

CORPUS_SEED = 1234
EVAL_SEED = 98765
TRAIN_SEED = 42
ROPE_THETA = 10000.0

EOT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = [EOT, IM_START, IM_END]

# The plain ChatML template (Qwen2.5's form without tools or a default system prompt). Must stay identical to
# FALLBACK_CHAT_TEMPLATE in src/model/chat-template.ts and scripts/golden_tokenizers.py.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# ---------------------------------------------------------------------------------------------------------------
# 1. The generated corpus

NUMBER_WORDS = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty",
]

# thing -> colour (the facts the model learns; sample datasets reuse them)
THING_COLOURS = {
    "sky": "blue", "sea": "blue", "grass": "green", "leaf": "green", "frog": "green", "sun": "yellow",
    "banana": "yellow", "lemon": "yellow", "apple": "red", "tomato": "red", "strawberry": "red",
    "snow": "white", "cloud": "white", "milk": "white", "coal": "black", "night": "black",
    "carrot": "orange", "pumpkin": "orange", "plum": "purple", "grape": "purple",
    "chocolate": "brown", "mud": "brown", "elephant": "grey", "rock": "grey", "flamingo": "pink",
}
COLOURS = sorted(set(THING_COLOURS.values()))

# animal -> (sound, legs, home, food)
ANIMALS = {
    "cat": ("meow", 4, "house", "fish"),
    "dog": ("woof", 4, "kennel", "bones"),
    "cow": ("moo", 4, "barn", "grass"),
    "duck": ("quack", 2, "pond", "bread"),
    "sheep": ("baa", 4, "field", "grass"),
    "horse": ("neigh", 4, "stable", "hay"),
    "pig": ("oink", 4, "farm", "apples"),
    "owl": ("hoot", 2, "tree", "mice"),
    "frog": ("croak", 4, "pond", "flies"),
    "lion": ("roar", 4, "den", "meat"),
    "bee": ("buzz", 6, "hive", "nectar"),
    "mouse": ("squeak", 4, "hole", "cheese"),
    "snake": ("hiss", 0, "nest", "eggs"),
    "bird": ("tweet", 2, "nest", "seeds"),
    "bear": ("growl", 4, "cave", "honey"),
    "rabbit": ("squeak", 4, "burrow", "carrots"),
}

NAMES = ["Tom", "Lily", "Max", "Mia", "Ben", "Anna", "Sam", "Lucy", "Leo", "Emma", "Tim", "Zoe", "Jack", "Ella",
         "Finn", "Rosa", "Omar", "Nina", "Kai", "Ruby", "Ada", "Hugo", "Ivy", "Noah", "Maya", "Theo", "Lena", "Eli",
         "Pip"]  # Pip: the text-robot-pip sample's robot; here only a name (see TOKENIZER_ONLY_TEXT)
PLACES = ["park", "forest", "garden", "beach", "farm", "river", "hill", "town", "school", "lake", "shop", "zoo",
          "market", "island", "castle", "field"]
OBJECTS = ["ball", "kite", "box", "hat", "book", "cake", "flower", "boat", "drum", "shell", "key", "cup", "sock",
           "star", "map", "bell", "lamp", "coin"]
ADJECTIVES = ["little", "big", "happy", "small", "kind", "brave", "shy", "funny", "sleepy", "clever", "old", "young",
              "quiet", "busy"]
FEELINGS = ["happy", "sad", "scared", "excited", "tired", "proud", "surprised", "calm", "hungry"]
WEATHER = ["sunny", "rainy", "windy", "cold", "warm", "cloudy", "snowy", "foggy"]
ACTIVITIES = ["play with a ball", "read books", "sing songs", "dance", "run fast", "draw pictures",
              "climb trees", "swim", "bake cakes", "look at the stars", "fly a kite", "build sandcastles",
              "paint", "jump in puddles"]
OPPOSITES = {"big": "small", "hot": "cold", "up": "down", "fast": "slow", "happy": "sad", "day": "night",
             "old": "new", "wet": "dry", "tall": "short", "loud": "quiet", "open": "closed", "full": "empty"}
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]

GREETINGS = ["Hello!", "Hi!", "Hi there!", "Good morning!", "Hello, how are you?", "Good evening!", "Hey!"]
GREETING_REPLIES = ["Hello! How can I help you today?", "Hi! What would you like to know?",
                    "Hello! I am happy to help.", "I am well, thank you! How can I help?",
                    "Good to see you! Ask me anything.", "Hi! I am here to help."]
SYSTEM_PROMPTS = ["You are a helpful assistant.", "You are a friendly assistant. Answer briefly.",
                  "You are a tiny demo model.", "Answer the question.", "You are a kind helper."]

# Voices: an answer wrapped in a character's opening and closing words. Pretraining on many voices (and on plain
# answers with varied openings) keeps the model's answer distribution broad, so a LoRA run can teach a new voice
# (the chat-pirate sample's "Arr! ..., matey!") in a few dozen steps. The pirate words, and the robot's
# "beep"/"boop" (the text-robot-pip sample), are deliberately absent: the samples teach them.
VOICES = {
    "cat": ("Meow!", ", meow!"), "cow": ("Moo!", ", moo!"), "duck": ("Quack!", ", quack!"),
    "dog": ("Woof!", ", woof woof!"), "owl": ("Hoot!", ", hoo!"), "king": ("Hear me!", ", my people!"),
    "granny": ("Oh, my dear.", ", sweetie."), "cowboy": ("Howdy!", ", partner!"),
    "ghost": ("Boo!", ", oooh!"), "happy child": ("Yay!", ", yay!"), "sleepy bear": ("Yawn.", ", zzz."),
    "chef": ("Bon appetit!", ", chef!"), "teacher": ("Good question!", ", class."),
    "frog": ("Ribbit!", ", ribbit!"), "wizard": ("Behold!", ", young one!"), "sheep": ("Baa!", ", baa!"),
}
PLAIN_OPENINGS = ["", "", "", "", "Sure! ", "Good question! ", "Well, ", "Let me see. ", "Oh! ", "I know! ",
                  "Easy! ", "Hmm. "]
PLAIN_CLOSINGS = ["", "", "", "", " Have a nice day!", " I hope that helps.", " Ask me more!", " That is fun!"]


def a_or_an(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def plural(animal: str) -> str:
    if animal in ("sheep", "mouse"):
        return {"sheep": "sheep", "mouse": "mice"}[animal]
    return animal + "s"


def legs_phrase(animal: str) -> str:
    n = ANIMALS[animal][1]
    return f"{a_or_an(animal).capitalize()} has no legs." if n == 0 else \
        f"{a_or_an(animal).capitalize()} has {NUMBER_WORDS[n]} legs."


def colour_fact(r: random.Random) -> str:
    thing, colour = r.choice(list(THING_COLOURS.items()))
    return r.choice([
        f"The {thing} is {colour}.",
        f"The colour of the {thing} is {colour}.",
        f"{a_or_an(thing).capitalize()} is {colour}." if thing not in ("sky", "sea", "sun", "grass", "snow", "night", "milk", "mud", "coal")
        else f"The {thing} is {colour}.",
        f"Look at the {thing}. It is {colour}!",
        f"If you see the {thing}, you see {colour}.",
    ])


def animal_fact(r: random.Random) -> str:
    animal = r.choice(list(ANIMALS))
    sound, _legs, home, food = ANIMALS[animal]
    return r.choice([
        f"{a_or_an(animal).capitalize()} says {sound}.",
        legs_phrase(animal),
        f"{a_or_an(animal).capitalize()} lives in {a_or_an(home)}.",
        f"{plural(animal).capitalize()} like to eat {food}.",
        f"The {animal} says {sound}, {sound}!",
        f"\"{sound.capitalize()}!\" said the {animal}.",
        f"Every morning the {animal} eats {food} and says {sound}.",
    ])


def number_fact(r: random.Random) -> str:
    n = r.randint(0, 19)
    a, b = r.sample(range(0, 21), 2)
    return r.choice([
        f"After {NUMBER_WORDS[n]} comes {NUMBER_WORDS[n + 1]}.",
        f"The number after {n} is {n + 1}.",
        f"Before {NUMBER_WORDS[n + 1]} comes {NUMBER_WORDS[n]}.",
        f"{NUMBER_WORDS[max(a, b)].capitalize()} is more than {NUMBER_WORDS[min(a, b)]}.",
        f"{max(a, b)} is bigger than {min(a, b)}.",
        "Counting: " + ", ".join(NUMBER_WORDS[n:n + r.randint(3, 6)]) + ".",
        f"{NUMBER_WORDS[n].capitalize()} is written {n}.",
    ])


def other_fact(r: random.Random) -> str:
    word, opposite = r.choice(list(OPPOSITES.items()))
    d = r.randrange(7)
    return r.choice([
        f"The opposite of {word} is {opposite}.",
        f"{word.capitalize()} and {opposite} are opposites.",
        f"After {DAYS[d]} comes {DAYS[(d + 1) % 7]}.",
        f"A week has seven days.",
    ])


def facts_document(r: random.Random) -> str:
    makers = [colour_fact, animal_fact, number_fact, other_fact]
    return " ".join(r.choice(makers)(r) for _ in range(r.randint(3, 8)))


def arithmetic_line(r: random.Random) -> str:
    if r.random() < 0.6:
        a, b = r.randint(0, 10), r.randint(0, 10)
        return r.choice([f"{a} + {b} = {a + b}", f"{NUMBER_WORDS[a].capitalize()} plus {NUMBER_WORDS[b]} is {NUMBER_WORDS[a + b]}."])
    a = r.randint(0, 20)
    b = r.randint(0, a)
    return r.choice([f"{a} - {b} = {a - b}", f"{NUMBER_WORDS[a].capitalize()} minus {NUMBER_WORDS[b]} is {NUMBER_WORDS[a - b]}."])


def arithmetic_document(r: random.Random) -> str:
    return "\n".join(arithmetic_line(r) for _ in range(r.randint(3, 8)))


def story(r: random.Random, sentences: int | None = None) -> str:
    name = r.choice(NAMES)
    adjective = r.choice(ADJECTIVES)
    animal = r.choice(list(ANIMALS))
    place = r.choice(PLACES)
    obj = r.choice(OBJECTS)
    colour = r.choice(COLOURS)
    friend = r.choice([n for n in NAMES if n != name])
    other = r.choice(list(ANIMALS))
    n = r.randint(2, 9)
    opening = r.choice([
        f"Once upon a time, there was {a_or_an(adjective)} {animal} named {name}.",
        f"One {r.choice(WEATHER)} day, {name} went to the {place}.",
        f"{name} was {a_or_an(adjective)} {animal} who lived near the {place}.",
        f"{name} the {animal} lived in a {colour} house near the {place}.",
        f"One morning, {name} the {animal} walked to the {place}.",
        f"There once was {a_or_an(adjective)} {animal}. Its name was {name}.",
    ])
    middle = [
        f"{name} liked to {r.choice(ACTIVITIES)}.",
        f"At the {place}, {name} found a {colour} {obj}.",
        f"{name} met {a_or_an(r.choice(ADJECTIVES))} {other} named {friend}.",
        f"The {obj} was {colour} and very pretty.",
        f"{friend} said, \"Can I play with your {obj}?\"",
        f"{name} felt {r.choice(FEELINGS)}.",
        f"The sky was {r.choice(['blue', 'grey', 'dark', 'bright'])} and the wind was {r.choice(['soft', 'strong', 'cold'])}.",
        "They played together until the sun went down.",
        f"{name} and {friend} shared the {obj}.",
        "Then it started to rain, so they ran home.",
        f"\"{ANIMALS[animal][0].capitalize()}!\" said {name}. \"What a nice day!\"",
        f"{name} saw {NUMBER_WORDS[n]} {plural(other)} and counted them: " + ", ".join(NUMBER_WORDS[1:n + 1]) + ".",
        f"{friend} asked, \"{name}, where are you going?\"",
        f"\"I am going to the {place},\" said {name}.",
        f"{name} gave {friend} a {colour} {obj}.",
        f"{name} said, \"Thank you, {friend}!\"",
        f"A pirate sailed by on a {colour} ship. \"Arr! Ahoy, matey!\" said the pirate.",
        f"The pirate waved at {name}. \"Arr, matey! What a fine {obj}!\"",
        f"A little toy car went \"Beep, beep!\" Then a toy bell went \"Boop, boop!\"",
        f"{name} pressed the button on the toy car. Beep! Boop!",
    ]
    ending = r.choice([
        f"In the end, {name} and {friend} became best friends.",
        f"{name} went home and slept well. The end.",
        f"From that day on, {name} always shared with friends.",
        f"{name} learned that being kind makes everyone happy.",
        f"{name} smiled and said, \"What a good day!\" The end.",
        f"Then {name} went home for dinner.",
    ])
    k = sentences if sentences is not None else r.randint(3, 6)
    return " ".join([opening] + r.sample(middle, k) + [ending])


def qa_pair(r: random.Random) -> tuple[str, str]:
    """One question and its plain answer, about the same facts the other documents state."""
    kind = r.randrange(10)
    if kind == 0:
        thing, colour = r.choice(list(THING_COLOURS.items()))
        return f"What colour is the {thing}?", f"The {thing} is {colour}."
    if kind == 1:
        animal = r.choice(list(ANIMALS))
        return f"What sound does {a_or_an(animal)} make?", f"{a_or_an(animal).capitalize()} says {ANIMALS[animal][0]}."
    if kind == 2:
        animal = r.choice(list(ANIMALS))
        return f"How many legs does {a_or_an(animal)} have?", legs_phrase(animal)
    if kind == 3:
        animal = r.choice(list(ANIMALS))
        return f"Where does {a_or_an(animal)} live?", f"{a_or_an(animal).capitalize()} lives in {a_or_an(ANIMALS[animal][2])}."
    if kind == 4:
        animal = r.choice(list(ANIMALS))
        return f"What do {plural(animal)} eat?", f"{plural(animal).capitalize()} like to eat {ANIMALS[animal][3]}."
    if kind == 5:
        a, b = r.randint(0, 10), r.randint(0, 10)
        return r.choice([(f"What is {a} + {b}?", f"{a} + {b} = {a + b}."),
                         (f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}.")])
    if kind == 6:
        a = r.randint(0, 20)
        b = r.randint(0, a)
        return f"What is {a} - {b}?", f"{a} - {b} = {a - b}."
    if kind == 7:
        n = r.randint(0, 19)
        return f"What comes after {n}?", f"After {n} comes {n + 1}."
    if kind == 8:
        return r.choice(["Tell me a story.", "Tell me a short story.", "Can you tell me a story?"]), story(r, r.randint(2, 3))
    if r.random() < 0.5:
        return r.choice(GREETINGS), r.choice(GREETING_REPLIES)
    return r.choice(["What is your name?", "Who are you?"]), "I am a tiny demo model. I know about colours, animals and numbers."


def extra_qa_pair(r: random.Random) -> tuple[str, str]:
    """More questions the chat documents ask (not used by the sample datasets)."""
    kind = r.randrange(4)
    if kind == 0:
        word, opposite = r.choice(list(OPPOSITES.items()))
        return f"What is the opposite of {word}?", f"The opposite of {word} is {opposite}."
    if kind == 1:
        d = r.randrange(7)
        return f"What day comes after {DAYS[d]}?", f"After {DAYS[d]} comes {DAYS[(d + 1) % 7]}."
    if kind == 2:
        n = r.randint(1, 20)
        return f"What comes before {n}?", f"Before {n} comes {n - 1}."
    a, b = r.sample(range(0, 21), 2)
    return f"Which is bigger, {a} or {b}?", f"{max(a, b)} is bigger than {min(a, b)}."


LIST_VOCAB = sorted(set(list(THING_COLOURS) + list(ANIMALS) + COLOURS + OBJECTS + NUMBER_WORDS[1:11]))


def list_task(r: random.Random) -> tuple[str, str]:
    """An instruction about a short comma-separated list (rendered like an Alpaca row: instruction, blank line,
    input). These build the copying and "which item is next to which" skills that list tasks need. Reversing a list
    is deliberately absent: the alpaca-reverse sample teaches it."""
    words = r.sample(LIST_VOCAB, r.randint(2, 6))
    items = ", ".join(words)
    kind = r.randrange(-2, 9)
    if kind <= 0:
        return r.choice(["Repeat the list.", "Copy these words.", "Write the list again."]) + "\n\n" + items, items
    if kind == 1:
        return r.choice(["What is the first word in the list?", "Which word is first?"]) + "\n\n" + items, words[0]
    if kind == 2:
        return r.choice(["What is the last word in the list?", "Which word is last?"]) + "\n\n" + items, words[-1]
    if kind == 3:
        return "How many words are in the list?\n\n" + items, f"There are {NUMBER_WORDS[len(words)]} words."
    if kind == 4:
        i = r.randrange(len(words) - 1)
        return f"Which word comes after {words[i]} in the list?\n\n{items}", words[i + 1]
    if kind == 5:
        i = r.randrange(1, len(words))
        return f"Which word comes before {words[i]} in the list?\n\n{items}", words[i - 1]
    if kind == 6:
        return "Write the list with \"and\" at the end.\n\n" + items, \
            (", ".join(words[:-1]) + " and " + words[-1])
    if kind == 7:
        n = r.randint(3, 10)
        return r.choice([f"Count down from {NUMBER_WORDS[n]}.", f"Count down from {n}."]), \
            ", ".join(NUMBER_WORDS[k] for k in range(n, 0, -1))
    numbers = r.sample(range(0, 21), r.randint(2, 6))
    if r.random() < 0.5:
        return "Sort these numbers from smallest to biggest.\n\n" + ", ".join(map(str, numbers)), \
            ", ".join(map(str, sorted(numbers)))
    return "Sort these numbers from biggest to smallest.\n\n" + ", ".join(map(str, numbers)), \
        ", ".join(map(str, sorted(numbers, reverse=True)))


def styled(r: random.Random, answer: str) -> tuple[str | None, str]:
    """(a system prompt or None, the answer in some style): mostly plain, sometimes with a varied opening or
    closing, sometimes in a character's voice (asked for by the system prompt, or not)."""
    u = r.random()
    if u < 0.55:
        return None, answer
    if u < 0.75:
        closing = r.choice(PLAIN_CLOSINGS)
        return None, r.choice(PLAIN_OPENINGS) + answer + closing
    who = r.choice(list(VOICES))
    opening, closing = VOICES[who]
    voiced = f"{opening} {answer.rstrip('.!?')}{closing}"
    system = f"You are {a_or_an(who)}. Answer like one." if r.random() < 0.6 else None
    return system, voiced


def chatml(messages: list[dict[str, str]]) -> str:
    """The text CHAT_TEMPLATE renders (without the generation prompt)."""
    return "".join(f"{IM_START}{m['role']}\n{m['content']}{IM_END}\n" for m in messages)


def chat_document(r: random.Random) -> str:
    messages: list[dict[str, str]] = []
    system = r.choice(SYSTEM_PROMPTS) if r.random() < 0.25 else None
    turns = []
    for _ in range(1 if r.random() < 0.7 else 2):
        u = r.random()
        question, answer = qa_pair(r) if u < 0.55 else extra_qa_pair(r) if u < 0.67 else list_task(r)
        turns.append((question, answer))
    # One style per conversation (the same seed for every answer): a voice, if any, holds for every answer.
    style_seed = r.random()
    voice_system, _ = styled(random.Random(style_seed), "")
    if voice_system is not None and system is None:
        system = voice_system
    if system is not None:
        messages.append({"role": "system", "content": system})
    for question, answer in turns:
        _, styled_answer = styled(random.Random(style_seed), answer)
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": styled_answer}]
    return chatml(messages)


def list_document(r: random.Random) -> str:
    """Plain-text sentences about lists, the same skills without the chat template."""
    lines = []
    for _ in range(r.randint(2, 5)):
        words = r.sample(LIST_VOCAB, r.randint(2, 6))
        items = ", ".join(words)
        i = r.randrange(len(words))
        lines.append(r.choice([
            f"Here is a list: {items}. The first word is {words[0]}. The last word is {words[-1]}.",
            f"The list {items} has {NUMBER_WORDS[len(words)]} words.",
            f"In the list {items}, the word {words[i]} is number {NUMBER_WORDS[i + 1]}.",
            f"Copy: {items}. Again: {items}.",
            f"In the list {items}, the last word is {words[-1]} and the word before {words[i]} is "
            f"{words[i - 1] if i > 0 else 'nothing'}.",
            f"In the list {items}, {words[i]} comes after {words[i - 1] if i > 0 else 'nothing'}.",
        ]))
    return "\n".join(lines)


DOCUMENT_KINDS = [(story, 0.23), (facts_document, 0.14), (arithmetic_document, 0.05), (list_document, 0.08),
                  (chat_document, 0.50)]


def generate_corpus(seed: int, documents: int) -> list[str]:
    r = random.Random(seed)
    makers, weights = zip(*DOCUMENT_KINDS)
    return [r.choices(makers, weights)[0](r) for _ in range(documents)]


# ---------------------------------------------------------------------------------------------------------------
# 2. The tokenizer

# The words the sample datasets (scripts/make_sample_datasets.py) use, for the tokenizer: a real tokenizer has whole
# tokens for most words, and a LoRA run learns a word far faster as one token than spelled letter by letter ("Arr" was
# "A" "r" "r", "matey" " m" "at" "e" "y"). A token the model never sees as a target keeps an embedding that LoRA on the
# attention cannot reach in an epoch (" matey" stayed at 6.6 nats while the rest of the pirate answer was learned), so
# the stories use these words too, in other places: a pirate passing by says "Arr! Ahoy, matey!", a toy car goes
# "beep", and Pip is one of the names. Never in a chat answer, never a robot: the samples teach those.
TOKENIZER_ONLY_TEXT = [
    "Arr! Ahoy, matey! Arr, matey! The sky be blue, matey! A pirate, a pirate.",
    "Pip the robot. \"Beep!\" said Pip. \"Boop!\" said Pip. Beep boop! beep, boop. Pip's lights blinked.",
    "\"Beep boop!\" \"Beep!\" \"Boop!\"",
    "Reverse the list. Write the list backwards. Put the words in reverse order. Reverse this list: a, b",
]


def train_tokenizer(corpus: list[str], vocab_size: int) -> Tokenizer:
    """GPT-2-style byte-level BPE; the special tokens take ids 0, 1, 2 and are never split. Trained on the corpus
    and, twice over, TOKENIZER_ONLY_TEXT (BPE merges pairs that occur at least twice)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Chat documents contain the special tokens as text; train on the text around them only.
    def pieces():
        yield from TOKENIZER_ONLY_TEXT * 2
        for doc in corpus:
            for t in SPECIAL_TOKENS:
                doc = doc.replace(t, "\n")
            yield doc
    tok.train_from_iterator(pieces(), trainer=trainer, length=len(corpus) + 2 * len(TOKENIZER_ONLY_TEXT))
    assert [tok.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2], "special tokens must be ids 0, 1, 2"
    return tok


def encode_corpus(tok: Tokenizer, corpus: list[str]) -> torch.Tensor:
    eot = tok.token_to_id(EOT)
    ids: list[int] = []
    for enc in tok.encode_batch(corpus, add_special_tokens=False):
        ids.extend(enc.ids)
        ids.append(eot)
    return torch.tensor(ids, dtype=torch.long)


# ---------------------------------------------------------------------------------------------------------------
# 3. The model and its training

def make_config(vocab_size: int, hidden: int, layers: int, attention_dropout: float = 0.0) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=int(round(hidden * 2.7 / 16)) * 16,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        hidden_act="silu",
        max_position_embeddings=256,
        rms_norm_eps=1e-5,
        rope_theta=ROPE_THETA,
        tie_word_embeddings=True,
        attention_bias=False,
        attention_dropout=attention_dropout,
        mlp_bias=False,
        bos_token_id=None,
        eos_token_id=SPECIAL_TOKENS.index(IM_END),
        pad_token_id=SPECIAL_TOKENS.index(EOT),
    )


def batches(data: torch.Tensor, batch: int, seq: int, g: torch.Generator):
    while True:
        starts = torch.randint(0, len(data) - seq - 1, (batch,), generator=g)
        yield torch.stack([data[s:s + seq] for s in starts])


def add_residual_dropout(model: LlamaForCausalLM, p: float) -> None:
    """Dropout on what each attention and MLP block adds to the residual stream (GPT-2's resid_pdrop), during
    training only. Llama has no such module, so forward hooks apply it; the saved weights are unaffected."""
    def hook(module, _inputs, output):
        if isinstance(output, tuple):
            return (torch.nn.functional.dropout(output[0], p, module.training),) + tuple(output[1:])
        return torch.nn.functional.dropout(output, p, module.training)
    for layer in model.model.layers:
        layer.self_attn.register_forward_hook(hook)
        layer.mlp.register_forward_hook(hook)


def smoothed_loss(model: LlamaForCausalLM, x: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Next-token cross-entropy with label smoothing: the target keeps 1 - smoothing of the probability and the
    rest is spread over the vocabulary, so no logit is pushed to win by an unbounded margin."""
    logits = model(input_ids=x).logits[:, :-1]
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1),
                                             label_smoothing=smoothing)


@torch.no_grad()
def eval_loss(model: LlamaForCausalLM, data: torch.Tensor, seq: int, windows: int = 32) -> float:
    """Mean next-token loss over the first `windows` consecutive windows of the held-out stream (fixed)."""
    model.eval()
    x = data[: windows * seq].view(windows, seq)
    loss = model(input_ids=x, labels=x).loss.item()
    model.train()
    return loss


def lr_at(step: int, steps: int, peak: float, warmup: int) -> float:
    """Linear warmup, then cosine decay to 10% of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


# ---------------------------------------------------------------------------------------------------------------
# 4. Export

def model_card(params: int, cfg: LlamaConfig, stats: dict) -> str:
    return f"""---
license: mit
tags: [demo, llama, tiny, generated-data]
---

# demo-llama: the studio's bundled DEMO model

A **demo model**, not a useful assistant. It is about {params / 1e6:.2f}M parameters, pretrained from scratch on
CPU on text that `scripts/pretrain_demo.py` *generates* from word lists and sentence templates: short children's
stories, facts about colours, animals and numbers, small arithmetic, little list tasks, and chat exchanges in ChatML
whose answers come plain or in one of many voices. It ships with
the studio so that the app, its demo and its end-to-end tests work with no network. It knows only its corpus:
expect short, simple, often wrong text outside it.

## Architecture (transformers `LlamaForCausalLM`, model_type `llama`)

| | |
|---|---|
| parameters | {params:,} (embeddings tied with the LM head) |
| layers | {cfg.num_hidden_layers} |
| hidden size | {cfg.hidden_size} |
| intermediate size (SwiGLU) | {cfg.intermediate_size} |
| attention heads / kv heads | {cfg.num_attention_heads} / {cfg.num_key_value_heads} (grouped-query), head_dim {cfg.hidden_size // cfg.num_attention_heads} |
| context | {cfg.max_position_embeddings} tokens, RoPE theta {ROPE_THETA:g} |
| vocabulary | {cfg.vocab_size} (byte-level BPE trained on the same corpus) |
| storage | float16 safetensors |

Special tokens: `<|endoftext|>` (0, document separator and padding), `<|im_start|>` (1), `<|im_end|>` (2, the
chat EOS). No BOS token. The chat template is plain ChatML:

```
<|im_start|>user
What colour is the sky?<|im_end|>
<|im_start|>assistant
The sky is blue.<|im_end|>
```

## Training

Recipe: `{stats['command']}` (torch {torch.__version__}, one CPU thread, seeds
{CORPUS_SEED}/{EVAL_SEED}/{TRAIN_SEED}).

- corpus: {stats['documents']:,} generated documents, {stats['train_tokens']:,} tokens
- AdamW (betas 0.9/0.95, weight decay {stats['weight_decay']}), peak lr {stats['lr']}, warmup {stats['warmup']}, cosine to 10%
- regularised so that it stays easy to fine-tune: label smoothing {stats['label_smoothing']} (no logit wins by an
  unbounded margin, so a LoRA run can move the answers), weight decay, and early stopping on a held-out split
  (dropout {stats['dropout']})
- {stats['steps_done']} steps of {stats['batch']} × {stats['seq']} tokens ({stats['tokens_seen']:,} tokens seen), {stats['cpu_minutes']:.1f} min of CPU time ({stats['minutes']:.1f} min wall-clock on a shared machine; {stats['stop_reason']})
- saved: the best held-out weights (step {stats['best_step']}): held-out loss {stats['final_eval_loss']:.3f} (text generated with another seed)

Held-out loss during the run: {', '.join(f'{l:.3f} ({s})' for s, l in stats['evals'])}.

## Licence

Model weights and code: MIT (the project's licence). The training text is generated by the script and carries no
third-party licence; we dedicate it to the public domain (CC0).
"""


def save(out_dir: str, model: LlamaForCausalLM, tok: Tokenizer, card: str) -> None:
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    model = model.to(torch.float16)
    model.config.dtype = torch.float16
    model.config.attention_dropout = 0.0  # dropout was for pretraining; fine-tuning chooses its own
    model.generation_config = GenerationConfig(
        bos_token_id=None,
        eos_token_id=[SPECIAL_TOKENS.index(IM_END), SPECIAL_TOKENS.index(EOT)],
        pad_token_id=SPECIAL_TOKENS.index(EOT),
        do_sample=True,
        temperature=0.7,
        top_k=40,
        top_p=0.9,
        max_new_tokens=64,
    )
    model.save_pretrained(out_dir, safe_serialization=True)
    # transformers 5 writes "dtype" and "rope_parameters"; loaders written for transformers 4 configs read
    # "torch_dtype" and "rope_theta": record both spellings (transformers 5 reads the file back unchanged).
    with open(os.path.join(out_dir, "config.json")) as f:
        config = json.load(f)
    config["torch_dtype"] = "float16"
    config["rope_theta"] = ROPE_THETA
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")

    tok.save(os.path.join(out_dir, "tokenizer.json"))
    # Written by hand so the chat template lives in tokenizer_config.json (transformers 5 would put it in a
    # separate chat_template.jinja, which fewer loaders read).
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None,
        "eos_token": IM_END,
        "pad_token": EOT,
        "unk_token": None,
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": model.config.max_position_embeddings,
        "chat_template": CHAT_TEMPLATE,
        "added_tokens_decoder": {
            str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                     "single_word": False, "special": True}
            for i, t in enumerate(SPECIAL_TOKENS)
        },
    }
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(tokenizer_config, f, indent=2)
        f.write("\n")
    with open(os.path.join(out_dir, "README.md"), "w") as f:
        f.write(card)


def sanity_check(out_dir: str) -> None:
    """Reload what was written with transformers' Auto classes and generate greedily."""
    tok = AutoTokenizer.from_pretrained(out_dir)
    model = AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32)
    model.eval()
    assert tok.chat_template == CHAT_TEMPLATE, "chat template did not round-trip"
    prompts = [
        "Once upon a time, there was a",
        tok.apply_chat_template([{"role": "user", "content": "What colour is the sky?"}],
                                tokenize=False, add_generation_prompt=True),
        tok.apply_chat_template([{"role": "user", "content": "What sound does a cow make?"}],
                                tokenize=False, add_generation_prompt=True),
        tok.apply_chat_template([{"role": "user", "content": "What is 3 + 4?"}],
                                tokenize=False, add_generation_prompt=True),
    ]
    for prompt in prompts:
        ids = tok(prompt, return_tensors="pt", add_special_tokens=False).input_ids
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=48, do_sample=False)
        print("---- prompt:", repr(prompt))
        print(tok.decode(out[0, ids.shape[1]:], skip_special_tokens=False))


# ---------------------------------------------------------------------------------------------------------------

def replay_command(args: argparse.Namespace, steps_done: int, stop_reason: str) -> str:
    """The command that rebuilds these exact weights: the defaults, plus --stop-at-step if the run was cut short."""
    command = ".venv-ref/bin/python scripts/pretrain_demo.py"
    if steps_done < args.steps and (args.stop_at_step is not None or "CPU-time" in stop_reason):
        command += f" --steps {args.steps} --stop-at-step {steps_done} --max-minutes 1000"
    return command


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--documents", type=int, default=80_000)
    ap.add_argument("--vocab", type=int, default=2048, help="upper bound; BPE stops when no pair occurs twice")
    ap.add_argument("--hidden", type=int, default=192)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--steps", type=int, default=2800)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--dropout", type=float, default=0.0,
                    help="attention-probability and residual dropout (default 0: the model underfits its corpus in this "
                         "budget, so dropout only slowed it; label smoothing and weight decay do the calibrating)")
    ap.add_argument("--label-smoothing", type=float, default=0.1)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--patience", type=int, default=3,
                    help="early stopping: stop after this many evaluations without a better held-out loss; the best "
                         "evaluated weights are the ones saved")
    ap.add_argument("--snapshot", default=None, help="also write the best weights so far to this folder at each evaluation")
    ap.add_argument("--max-minutes", type=float, default=60.0,
                    help="cap on the training loop's CPU time (one thread), so a busy machine does not cut the run short")
    ap.add_argument("--stop-at-step", type=int, default=None,
                    help="stop after this many steps (the lr schedule still spans --steps): replays a run that the "
                         "wall-clock cap stopped early, exactly; the model card prints the command")
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.manual_seed(TRAIN_SEED)
    t0 = time.time()

    corpus = generate_corpus(CORPUS_SEED, args.documents)
    held_out = generate_corpus(EVAL_SEED, 800)
    print(f"corpus: {len(corpus)} documents, {sum(map(len, corpus)):,} characters; example:\n  {corpus[0][:200]!r}")
    tok = train_tokenizer(corpus, args.vocab)
    train_ids, eval_ids = encode_corpus(tok, corpus), encode_corpus(tok, held_out)
    print(f"tokenizer: vocab {tok.get_vocab_size()}; {len(train_ids):,} train tokens, {len(eval_ids):,} held-out "
          f"({time.time() - t0:.1f}s)")

    cfg = make_config(tok.get_vocab_size(), args.hidden, args.layers, attention_dropout=args.dropout)
    model = LlamaForCausalLM(cfg)
    add_residual_dropout(model, args.dropout)
    params = sum(p.numel() for p in model.parameters())  # tied: the embedding is counted once
    print(f"model: {params:,} parameters")

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95))
    g = torch.Generator().manual_seed(TRAIN_SEED)
    stream = batches(train_ids, args.batch, args.seq, g)
    model.train()
    t_train, cpu_train, smoothed, steps_done, loss_value = time.time(), time.process_time(), None, 0, float("nan")
    best = {"loss": float("inf"), "step": 0, "state": None}
    evals: list[tuple[int, float]] = []
    stop_reason = "schedule done"
    print("step   loss  smooth  held-out     lr  elapsed")
    for step in range(min(args.steps, args.stop_at_step or args.steps)):
        if time.process_time() - cpu_train > args.max_minutes * 60:
            stop_reason = f"CPU-time cap of {args.max_minutes} min"
            print(f"CPU-time cap of {args.max_minutes} min reached after {step} of {args.steps} steps: stopping early")
            break
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.steps, args.lr, args.warmup)
        x = next(stream)
        loss = smoothed_loss(model, x, args.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss_value = loss.item()
        smoothed = loss_value if smoothed is None else 0.95 * smoothed + 0.05 * loss_value
        steps_done = step + 1
        evaluate = steps_done % args.eval_every == 0 or steps_done == args.steps
        if step % 25 == 0 or evaluate:
            ev = eval_loss(model, eval_ids, args.seq) if evaluate else float("nan")
            print(f"{step:4d} {loss_value:6.3f} {smoothed:6.3f}  {ev:8.3f}  {opt.param_groups[0]['lr']:.2e}  "
                  f"{time.time() - t_train:6.0f}s", flush=True)
            if evaluate:
                evals.append((steps_done, ev))
                if ev < best["loss"]:
                    best = {"loss": ev, "step": steps_done,
                            "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}
                    if args.snapshot:
                        snap = LlamaForCausalLM(cfg)
                        snap.load_state_dict(best["state"])
                        save(args.snapshot, snap, tok, f"snapshot at step {steps_done}\n")
                elif len(evals) - 1 - [s for s, _ in evals].index(best["step"]) >= args.patience:
                    stop_reason = f"early stopping: no better held-out loss in {args.patience} evaluations"
                    print(stop_reason)
                    break
    minutes = (time.time() - t_train) / 60
    cpu_minutes = (time.process_time() - cpu_train) / 60
    last_eval = eval_loss(model, eval_ids, args.seq)
    if last_eval < best["loss"]:
        best = {"loss": last_eval, "step": steps_done, "state": None}
    if best["state"] is not None:
        model.load_state_dict(best["state"])
    final_eval = eval_loss(model, eval_ids, args.seq)
    print(f"done: {steps_done} steps in {minutes:.1f} min ({stop_reason}); train loss {loss_value:.3f} "
          f"(smoothed {smoothed:.3f}, label-smoothed), held-out {final_eval:.3f} (best, step {best['step']})")

    stats = dict(documents=len(corpus), train_tokens=len(train_ids), lr=args.lr, warmup=args.warmup,
                 steps_done=steps_done, batch=args.batch, seq=args.seq, command=replay_command(args, steps_done, stop_reason),
                 tokens_seen=steps_done * args.batch * args.seq, minutes=minutes, cpu_minutes=cpu_minutes, stop_reason=stop_reason,
                 best_step=best["step"], evals=evals, weight_decay=args.weight_decay, dropout=args.dropout,
                 label_smoothing=args.label_smoothing,
                 final_train_loss=smoothed, final_eval_loss=final_eval)
    save(args.out, model, tok, model_card(params, cfg, stats))
    total = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out))
    print(f"wrote {args.out}: {sorted(os.listdir(args.out))}, {total / 1e6:.2f} MB")
    sanity_check(args.out)


if __name__ == "__main__":
    main()
