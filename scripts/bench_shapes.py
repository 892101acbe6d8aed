"""The model shapes of `rlhf-tui bench --shape` (src/bench/shape.rs), for
the peer scripts: set SHAPE to one of them (default gpt2-4x256).

- gpt2-4x256: GPT-2, 4 layers, 4 heads, d_model 256, vocab 4096, context 256.
- smollm2-135m: Llama as SmolLM2-135M is shaped: 30 layers, d 576, 9 heads
  on 3 key/value heads, FFN 1536, vocab 49152, tied embeddings.

PPO's iteration is cut at 135M parameters to fit in under a minute on a
2-core machine; every other workload's numbers are the same at both.
"""

import os

from transformers import (
    GPT2Config,
    GPT2ForSequenceClassification,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
)

SHAPE = os.environ.get("SHAPE", "gpt2-4x256")
if SHAPE not in ("gpt2-4x256", "smollm2-135m"):
    raise SystemExit(f"SHAPE is {SHAPE!r}: gpt2-4x256 or smollm2-135m")

VOCAB = {"gpt2-4x256": 4096, "smollm2-135m": 49152}[SHAPE]

# Parameters in matrix products per token: the blocks' projections and the
# tied LM head (as the Rust side counts them).
MATMUL_PARAMS = {
    "gpt2-4x256": 4 * 12 * 256 * 256 + 256 * 4096,
    "smollm2-135m": 30 * (2 * 576 * 576 + 2 * 576 * 192 + 3 * 576 * 1536) + 576 * 49152,
}[SHAPE]

# prompts, prompt length, new tokens, epochs, minibatch size
PPO = {"gpt2-4x256": (32, 16, 48, 4, 8), "smollm2-135m": (16, 16, 32, 2, 8)}[SHAPE]


def config(**extra):
    if SHAPE == "gpt2-4x256":
        return GPT2Config(vocab_size=VOCAB, n_positions=256, n_embd=256, n_layer=4, n_head=4, **extra)
    return LlamaConfig(
        vocab_size=VOCAB, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
        num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
        rms_norm_eps=1e-5, rope_theta=100000.0, tie_word_embeddings=True, bos_token_id=0, eos_token_id=0,
        **extra,
    )


def causal_lm(**extra):
    cls = GPT2LMHeadModel if SHAPE == "gpt2-4x256" else LlamaForCausalLM
    return cls(config(**extra))


def scalar_model(**extra):
    cls = GPT2ForSequenceClassification if SHAPE == "gpt2-4x256" else LlamaForSequenceClassification
    return cls(config(num_labels=1, **extra))
