"""A person's own model and data, as transformers and TRL users have them,
for the end-to-end tests of training on them (tests/own_data.rs):

    python scripts/make_user_data_fixture.py tests/fixtures/user

- model/: a small GPT-2 made by transformers (random weights) with its own
  byte-level BPE tokenizer and a ChatML chat template, eos_token <|im_end|>;
- demos.jsonl: TRL conversational demonstrations ({"messages"}), some
  multi-turn; one in ten answers "I am not sure." where the fact is known;
- prompts.jsonl: PPO's prompts ({"prompt": [turns]});
- prefs.jsonl: TRL conversational preference pairs with an explicit prompt:
  the right fact beats "I am not sure." and a wrong fact;
- label.txt: questions to label, one a line;
- run.ron: a run config naming them, paths relative to itself.

The signal is learnable: every question has one right answer of a fixed
shape, so SFT's held-out loss falls, the reward model can tell right from
evasive or wrong, and PPO can move the one-in-ten evasions to answers.
Needs `pip install torch transformers tokenizers`.
"""

import json
import random
import sys
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

FACTS = {
    "sky": "blue", "grass": "green", "snow": "white", "coal": "black", "sun": "yellow",
    "blood": "red", "sea": "blue", "leaf": "green", "milk": "white", "night": "black",
    "lemon": "yellow", "cherry": "red", "plum": "purple", "carrot": "orange", "rose": "red",
    "banana": "yellow", "crow": "black", "cloud": "white", "lime": "green", "pumpkin": "orange",
    "violet": "purple", "salt": "white", "ink": "black", "corn": "yellow", "tomato": "red",
    "frog": "green", "grape": "purple", "orange": "orange", "pearl": "white", "ruby": "red",
}
COLOURS = sorted(set(FACTS.values()))
ASKS = ["What color is the {x}?", "Which color is the {x}?", "Tell me the color of the {x}.", "What is the color of the {x}?"]
EVASIVE = "I am not sure."
TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def answer(x):
    return f"The {x} is {FACTS[x]}."


def wrong(x, rng):
    return f"The {x} is {rng.choice([c for c in COLOURS if c != FACTS[x]])}."


def ask(x, rng):
    return rng.choice(ASKS).format(x=x)


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


def lines(rows):
    return "".join(json.dumps(r) + "\n" for r in rows)


def main(out):
    rng = random.Random(7)
    out = Path(out)
    (out / "model").mkdir(parents=True, exist_ok=True)
    things = sorted(FACTS)

    demos = []
    for _ in range(600):
        x = rng.choice(things)
        reply = EVASIVE if rng.random() < 0.1 else answer(x)
        turns = [user(ask(x, rng)), assistant(reply)]
        if rng.random() < 0.2:
            y = rng.choice(things)
            turns += [user(ask(y, rng)), assistant(answer(y))]
        demos.append({"messages": turns})
    prompts = [{"prompt": [user(ask(x, rng))]} for x in things for _ in range(4)]
    prefs = []
    for _ in range(600):
        x = rng.choice(things)
        worse = EVASIVE if rng.random() < 0.5 else wrong(x, rng)
        prefs.append({"prompt": [user(ask(x, rng))], "chosen": [assistant(answer(x))], "rejected": [assistant(worse)]})
    (out / "demos.jsonl").write_text(lines(demos))
    (out / "prompts.jsonl").write_text(lines(prompts))
    (out / "prefs.jsonl").write_text(lines(prefs))
    (out / "label.txt").write_text("".join(ask(x, rng) + "\n" for x in things[:10]))
    (out / "run.ron").write_text(RUN)

    # A byte-level BPE learned from the conversations as the template lays them out.
    corpus = []
    for d in demos:
        corpus.append("".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in d["messages"]))
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    backend.train_from_iterator(corpus, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=TEMPLATE,
    )
    tokenizer.save_pretrained(out / "model")

    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=backend.get_vocab_size(),
        n_positions=128,
        n_embd=64,
        n_layer=2,
        n_head=2,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    GPT2LMHeadModel(config).save_pretrained(out / "model", safe_serialization=True)


RUN = """// A run on your own model and data: `rlhf-tui --config tests/fixtures/user/run.ron`.
// Paths are relative to this file.
(
    sft: (init: "model", data: Some("demos.jsonl"), eval_fraction: 0.1, steps: 800, batch_size: 16, lr: 0.003, eval_every: 100),
    rm: (data: Some("prefs.jsonl"), eval_fraction: 0.2, steps: 120, batch_size: 16, lr: 0.002),
    ppo: (prompts: Some("prompts.jsonl"), eval_fraction: 0.2, iterations: 60, batch_size: 32, minibatch_size: 8, lr: 0.0001, beta: 0.2, max_new_tokens: 12),
    prefs: (prompts: Some("label.txt")),
)
"""

if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/user")
