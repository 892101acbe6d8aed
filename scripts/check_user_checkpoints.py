"""Checks that the checkpoints of a run on your own model open in
transformers as they are and agree with rlhf-tui: for each language-model
checkpoint, the chat template renders a conversation to the same tokens,
and `rlhf-tui score` gives transformers' log-probs; the reward model opens
as its family's …ForSequenceClassification and `rlhf-tui score` gives its scores.

    python scripts/check_user_checkpoints.py runs/own [path/to/rlhf-tui]
"""

import json
import pathlib
import subprocess
import sys

import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

CONVERSATION = [{"role": "user", "content": "What color is the frog?"}]


def rlhf_tui(binary, ckpt, text):
    command = [binary, "score", "--model", str(ckpt), "--text", text, "--json", "--device", "cpu"]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def main(run, binary):
    checkpoints = sorted((pathlib.Path(run) / "checkpoints").iterdir())
    for ckpt in checkpoints:
        tok = AutoTokenizer.from_pretrained(ckpt)
        prompt = tok.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=True)
        text = prompt + "The frog is green."
        if ckpt.name.startswith("rm-"):
            model = AutoModelForSequenceClassification.from_pretrained(ckpt).eval()
            for answer in ["The frog is green.", "I am not sure."]:
                with torch.no_grad():
                    want = model(**tok(prompt + answer, return_tensors="pt")).logits[0, 0].item()
                got = json.loads(rlhf_tui(binary, ckpt, prompt + answer))["reward"]
                print(f"{ckpt.name}: {answer!r} scores {want:+.5f} in transformers, {got:+.5f} here")
                assert abs(got - want) < 1e-4
            continue
        model = AutoModelForCausalLM.from_pretrained(ckpt).eval()
        ids = tok(text)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0]
        want = torch.log_softmax(logits.double(), -1)[:-1].gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
        got = json.loads(rlhf_tui(binary, ckpt, text))
        assert got["tokens"] == ids, (got["tokens"], ids)
        diff = (torch.tensor(got["logprobs"]).double() - want).abs().max().item()
        print(f"{ckpt.name}: {len(ids)} tokens as transformers renders and tokenizes them; log-probs within {diff:.2e}")
        assert diff < 1e-4


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "rlhf-tui")
