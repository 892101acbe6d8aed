"""Checks that the checkpoints of a run on your own model open in
transformers as they are and agree with rlhf-tui: for each language-model
checkpoint, the chat template renders a conversation to the same tokens,
and `rlhf-tui score` gives transformers' log-probs; the reward model opens
as GPT2ForSequenceClassification and orders held-out-style pairs.

    python scripts/check_user_checkpoints.py runs/own [path/to/rlhf-tui]
"""

import json
import pathlib
import subprocess
import sys

import torch
from transformers import AutoTokenizer, GPT2ForSequenceClassification, GPT2LMHeadModel

CONVERSATION = [{"role": "user", "content": "What color is the frog?"}]


def main(run, binary):
    checkpoints = sorted((pathlib.Path(run) / "checkpoints").iterdir())
    for ckpt in checkpoints:
        tok = AutoTokenizer.from_pretrained(ckpt)
        prompt = tok.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=True)
        text = prompt + "The frog is green."
        if ckpt.name.startswith("rm-"):
            model = GPT2ForSequenceClassification.from_pretrained(ckpt).eval()
            score = lambda answer: model(**tok(prompt + answer, return_tensors="pt")).logits[0, 0].item()
            good, evasive = score("The frog is green."), score("I am not sure.")
            print(f"{ckpt.name}: opens; right answer {good:+.3f}, evasion {evasive:+.3f}")
            assert good > evasive
            continue
        model = GPT2LMHeadModel.from_pretrained(ckpt).eval()
        ids = tok(text)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0]
        want = torch.log_softmax(logits.double(), -1)[:-1].gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
        out = subprocess.run(
            [binary, "score", "--model", str(ckpt), "--text", text, "--json", "--device", "cpu"],
            check=True, capture_output=True, text=True,
        )
        got = json.loads(out.stdout)
        assert got["tokens"] == ids, (got["tokens"], ids)
        diff = (torch.tensor(got["logprobs"]).double() - want).abs().max().item()
        print(f"{ckpt.name}: {len(ids)} tokens as transformers renders and tokenizes them; log-probs within {diff:.2e}")
        assert diff < 1e-4


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "rlhf-tui")
