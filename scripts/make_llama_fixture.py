"""Makes the Llama-family parity fixtures under tests/fixtures/llama/: tiny
random models as transformers writes them, and transformers' own logits.

- tiny-llama: LlamaForCausalLM, grouped-query attention with 6 query heads
  on 2 key/value heads (a ratio of 3, a head count that is not a power of
  two), head_dim 8, untied embeddings, rope_theta 500000 and Llama 3's
  rope_scaling;
- tiny-qwen2: Qwen2ForCausalLM, q/k/v biases, 3 query heads on 1 key/value
  head, tied embeddings.

Both use the tiny GPT-2 fixture's tokenizer (tests/fixtures/tiny-gpt2). The
weights are drawn wider than the initialiser's, and the RMSNorm weights are
perturbed around 1, so logits are spread out and a wrong layout shows.
Each also gets a reward model beside it (tiny-llama-rm, tiny-qwen2-rm:
…ForSequenceClassification with one label on the same body, a pad token
set, so transformers pools at the last token that is not padding).

logits.json holds, per model:
- ids, logits: the token ids of each text and transformers' logits at
  every position;
- greedy: prompts cut from the texts, left-padded into one batch, and the
  tokens transformers' greedy `generate` adds with its cache (no stop
  token), with the logits at each row's last prompt position (positions
  counted from each row's first real token, as `generate` counts them);
- scores: the reward model's score of each text, the texts right-padded
  into one batch.

Run from the repository root (needs torch, transformers):
    python scripts/make_llama_fixture.py
"""

import json
import pathlib
import shutil

import torch
from transformers import (
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen2ForSequenceClassification,
)

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
OUT = FIXTURES / "llama"
TEXTS = [
    "\n\nHuman: What is a cat?\n\nAssistant: A cat is a small pet.",
    "Hello world, hello rain.",
]
# Prompt lengths cut from the texts for the greedy batch: unequal, so one
# row is left-padded.
PROMPT_LENS = [7, 3]
NEW_TOKENS = 10


def widen(model, std):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            else:
                p.copy_(std * torch.randn_like(p))


def rounded(rows):
    """Seven significant digits: far below the 1e-4 the tests allow."""
    return [[float(f"{v:.7g}") for v in row] for row in rows]


def greedy(model, ids, pad):
    prompts = [i[:n] for i, n in zip(ids, PROMPT_LENS)]
    width = max(PROMPT_LENS)
    batch = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        last = model(batch, attention_mask=mask, position_ids=positions).logits[:, -1]
        out = model.generate(
            batch, attention_mask=mask, do_sample=False, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
            use_cache=True, pad_token_id=pad, eos_token_id=None,
        )
    return {"prompts": prompts, "last_logits": rounded(last.tolist()), "new_tokens": out[:, width:].tolist()}


def reward_model(model, cls, name, tokenizer, ids, pad):
    config = model.config.to_dict()
    config = {k: v for k, v in config.items() if k not in ("id2label", "label2id")}
    config.update(num_labels=1, pad_token_id=pad, architectures=None)
    rm = cls(type(model.config).from_dict(config)).eval()
    missing, _ = rm.load_state_dict(model.state_dict(), strict=False)
    assert missing == ["score.weight"], missing
    with torch.no_grad():
        rm.score.weight.copy_(0.3 * torch.randn_like(rm.score.weight))
    path = OUT / f"{name}-rm"
    rm.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    width = max(len(i) for i in ids)
    batch = torch.tensor([i + [pad] * (width - len(i)) for i in ids])
    with torch.no_grad():
        return [float(f"{v:.7g}") for v in rm(batch).logits[:, 0].tolist()]


def save(model, cls, name, tokenizer):
    path = OUT / name
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    ids = [tokenizer(t)["input_ids"] for t in TEXTS]
    # A pad id that no text uses, so pooling finds each text's last token.
    pad = len(tokenizer) - 1
    assert all(pad not in i for i in ids)
    with torch.no_grad():
        logits = [rounded(model(torch.tensor([i])).logits[0].tolist()) for i in ids]
    return {
        "ids": ids,
        "logits": logits,
        "greedy": greedy(model, ids, pad),
        "pad": pad,
        "scores": reward_model(model, cls, name, tokenizer, ids, pad),
    }


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(FIXTURES / "tiny-gpt2")
    vocab = len(tokenizer)
    torch.manual_seed(0)
    llama = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=vocab,
            hidden_size=48,
            intermediate_size=80,
            num_hidden_layers=2,
            num_attention_heads=6,
            num_key_value_heads=2,
            head_dim=8,
            max_position_embeddings=128,
            rms_norm_eps=1e-5,
            rope_theta=500000.0,
            rope_scaling={
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 32,
            },
            tie_word_embeddings=False,
            bos_token_id=0,
            eos_token_id=0,
        )
    ).eval()
    widen(llama, 0.2)
    qwen = Qwen2ForCausalLM(
        Qwen2Config(
            vocab_size=vocab,
            hidden_size=36,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=3,
            num_key_value_heads=1,
            max_position_embeddings=128,
            rms_norm_eps=1e-6,
            rope_theta=10000.0,
            tie_word_embeddings=True,
            bos_token_id=0,
            eos_token_id=0,
        )
    ).eval()
    widen(qwen, 0.2)
    expected = {
        "tiny-llama": save(llama, LlamaForSequenceClassification, "tiny-llama", tokenizer),
        "tiny-qwen2": save(qwen, Qwen2ForSequenceClassification, "tiny-qwen2", tokenizer),
    }
    (OUT / "logits.json").write_text(json.dumps(expected))


if __name__ == "__main__":
    main()
