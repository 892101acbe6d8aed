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
logits.json holds, per model, the token ids of each text and transformers'
logits at every position.

Run from the repository root (needs torch, transformers):
    python scripts/make_llama_fixture.py
"""

import json
import pathlib
import shutil

import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
OUT = FIXTURES / "llama"
TEXTS = [
    "\n\nHuman: What is a cat?\n\nAssistant: A cat is a small pet.",
    "Hello world, hello rain.",
]


def widen(model, std):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            else:
                p.copy_(std * torch.randn_like(p))


def save(model, name, tokenizer):
    path = OUT / name
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    ids = [tokenizer(t)["input_ids"] for t in TEXTS]
    with torch.no_grad():
        # Seven significant digits: far below the 1e-4 the test allows.
        logits = [[[float(f"{v:.7g}") for v in row] for row in model(torch.tensor([i])).logits[0].tolist()] for i in ids]
    return {"ids": ids, "logits": logits}


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
    expected = {"tiny-llama": save(llama, "tiny-llama", tokenizer), "tiny-qwen2": save(qwen, "tiny-qwen2", tokenizer)}
    (OUT / "logits.json").write_text(json.dumps(expected))


if __name__ == "__main__":
    main()
