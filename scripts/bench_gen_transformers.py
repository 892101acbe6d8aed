"""The `gen` workload (DESIGN.md) through transformers' `generate`, the peer
that `rlhf-tui bench gen` is compared with: a model of the shape SHAPE
names (scripts/bench_shapes.py; GPT-2 4 layers, d_model 256 by default),
random weights; 32 prompts of 16 tokens; 48 new tokens each, sampled at
T = 1.0, KV cache on. Prints one JSON line with generated tokens per second
(median of the timed repeats, after a warm-up), on as many threads as
`torch.get_num_threads()` (set THREADS).

    SHAPE=smollm2-135m python scripts/bench_gen_transformers.py [repeats]
"""

import json
import os
import statistics
import sys
import time

import torch
from bench_shapes import SHAPE, VOCAB, causal_lm

if "THREADS" in os.environ:
    torch.set_num_threads(int(os.environ["THREADS"]))

PROMPTS, PROMPT_LEN, NEW = 32, 16, 48


def main():
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    torch.manual_seed(0)
    model = causal_lm().eval()
    prompts = torch.randint(0, VOCAB, (PROMPTS, PROMPT_LEN), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(prompts)

    def once():
        with torch.inference_mode():
            out = model.generate(
                prompts, attention_mask=mask, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                max_new_tokens=NEW, min_new_tokens=NEW, use_cache=True, pad_token_id=0, eos_token_id=None,
            )
        return (out.shape[1] - PROMPT_LEN) * out.shape[0]

    once()
    times, generated = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        generated = once()
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    print(json.dumps({
        "workload": "gen", "shape": SHAPE, "peer": "transformers", "version": __import__("transformers").__version__,
        "threads": torch.get_num_threads(), "generated_tokens": generated,
        "seconds": seconds, "tokens_per_s": generated / seconds,
    }))


if __name__ == "__main__":
    main()
