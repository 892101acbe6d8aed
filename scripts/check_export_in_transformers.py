"""Checks that directories rlhf-tui writes open in transformers'
from_pretrained and give the same outputs as the originals: re-saves both
fixture models through `examples/resave.rs`, loads the copies with
transformers, and compares logits and reward-model scores with the ones in
tests/fixtures/. Run from the repository root with torch and transformers:

    python scripts/check_export_in_transformers.py
"""

import json
import os
import pathlib
import subprocess
import tempfile

import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, GPT2ForSequenceClassification, GPT2LMHeadModel

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"


def resave(src, dst, scalar):
    cmd = ["cargo", "run", "--release", "--quiet", "--example", "resave", "--", str(src), str(dst)]
    subprocess.run(cmd + (["--scalar"] if scalar else []), check=True, cwd=ROOT, env=os.environ)


def main():
    expected = json.loads((FIXTURES / "parity.json").read_text())
    logits = load_file(str(FIXTURES / "parity_logits.safetensors"))
    with tempfile.TemporaryDirectory() as tmp:
        lm_dir, rm_dir = pathlib.Path(tmp) / "lm", pathlib.Path(tmp) / "rm"
        resave(FIXTURES / "tiny-gpt2", lm_dir, scalar=False)
        resave(FIXTURES / "tiny-gpt2-rm", rm_dir, scalar=True)

        lm = GPT2LMHeadModel.from_pretrained(lm_dir).eval()
        tok = AutoTokenizer.from_pretrained(lm_dir)
        ids = tok(expected["texts"][0])["input_ids"]
        assert ids == expected["ids"][0], "tokenizer.json gives other ids"
        with torch.no_grad():
            got = lm(torch.tensor([ids])).logits[0]
        lm_diff = float((got - logits["single_logits"]).abs().max())

        rm = GPT2ForSequenceClassification.from_pretrained(rm_dir).eval()
        seqs, pad = expected["ids"], rm.config.pad_token_id
        width = max(len(s) for s in seqs)
        rids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs])
        rmask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
        with torch.no_grad():
            scores = rm(rids, attention_mask=rmask).logits[:, 0]
        rm_diff = float((scores - torch.tensor(expected["rm_scores"])).abs().max())
    print(json.dumps({"lm_max_abs_logit_diff": lm_diff, "rm_max_abs_score_diff": rm_diff}))
    assert lm_diff < 1e-5 and rm_diff < 1e-5


if __name__ == "__main__":
    main()
