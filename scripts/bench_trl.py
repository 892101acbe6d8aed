"""DESIGN.md's `ppo`, `rm` and `sft` workloads through TRL, the peers that
`rlhf-tui bench ppo|rm|sft` are compared with. Models are of the shape
SHAPE names (scripts/bench_shapes.py: GPT-2 4 layers, d_model 256 by
default, or smollm2-135m), random weights.

- ppo: `trl.experimental.ppo.PPOTrainer` with policy, frozen reference,
  value model and reward model of that shape; one iteration = 32 prompts of
  16 tokens, 48 sampled tokens at T = 1.0 (no stop token), 4 epochs over 4
  minibatches of 8 (at smollm2-135m: 16 prompts, 32 tokens, 2 epochs over
  2 minibatches of 8). Episodes per second over the iterations after the
  first, and the process's peak resident memory.
- grpo: `trl.GRPOTrainer` with a policy and a reward model of that shape
  (beta 0, TRL's default, so no reference model); one step = 8 prompts of
  16 tokens, 4 completions each of up to 48 tokens at T = 1.0, one
  optimizer step over the 32 (num_iterations 1). Completions per second
  over the steps after the first, and peak resident memory.
- dpo: `trl.DPOTrainer` with a policy and its frozen copy as the
  reference; 16 pairs per step, prompts of 16 tokens, chosen and rejected
  responses of 48 tokens (and the end-of-sequence token TRL appends).
  Pairs per second over the steps after the first.
- rm: `trl.RewardTrainer`, 16 pairs per step, 96 tokens a side. Pairs per
  second over the steps after the first.
- sft: `trl.SFTTrainer`, 16 sequences of 128 tokens per step. Tokens per
  second over the steps after the first two, and model FLOPs utilisation
  counted as `rlhf-tui bench sft` counts it (6 x matrix parameters x
  tokens) against PyTorch's own rate on square 1024^3 products, measured
  in the same process.

Every trainer runs in f32 like rlhf-tui (TRL's configs default to bf16
autocast on the CPU) and without gradient checkpointing (on by default in
TRL: it trades a second forward pass for memory this model does not need).

Prints one JSON line, on as many threads as `torch.get_num_threads()` (set
THREADS).

    SHAPE=smollm2-135m python scripts/bench_trl.py ppo|grpo|dpo|rm|sft [repeats]
"""

import json
import os
import resource
import sys
import tempfile
import time

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

import torch
from datasets import Dataset
from tokenizers import Tokenizer, models
from transformers import PreTrainedTokenizerFast, TrainerCallback

from bench_shapes import MATMUL_PARAMS, PPO, SHAPE, VOCAB, causal_lm, scalar_model

import trl.import_utils as trl_imports
from transformers.utils import import_utils as hf_imports

# transformers 5 returns (exists, version) where trl 0.28 expects a bool, so
# trl takes every optional package (weave, wandb, ...) for installed and
# fails importing the first that is not; ask transformers for the bool.
def package_available(name, return_version=False):
    exists, version = hf_imports._is_package_available(name, return_version=True)
    return (exists, version) if return_version else exists


trl_imports._is_package_available = package_available

if "THREADS" in os.environ:
    torch.set_num_threads(int(os.environ["THREADS"]))


def tokenizer():
    """A word-level tokenizer over the bench vocabulary: the trainers need
    one for padding, never for text."""
    vocab = {f"t{i}": i for i in range(VOCAB)}
    inner = Tokenizer(models.WordLevel(vocab, unk_token="t1"))
    return PreTrainedTokenizerFast(tokenizer_object=inner, pad_token="t0", eos_token="t1", unk_token="t1")


def text_tokenizer():
    """`tokenizer()` reading text as its token names split at spaces, for
    the trainers that take text (GRPO's prompts, DPO's pairs)."""
    from tokenizers.pre_tokenizers import WhitespaceSplit

    tok = tokenizer()
    tok.backend_tokenizer.pre_tokenizer = WhitespaceSplit()
    return tok


def words(rows):
    """Token id rows as the text `text_tokenizer` reads back to them."""
    return [" ".join(f"t{i}" for i in row) for row in rows]


class StepTimes(TrainerCallback):
    """Wall-clock time at the end of every optimizer step / PPO iteration."""

    def __init__(self):
        self.times = []

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter())


def rate(times, per_step):
    """Items per second over the steps after the first."""
    return per_step * (len(times) - 1) / (times[-1] - times[0])


def ppo(repeats):
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    n_prompts, prompt_len, new_tokens, epochs, minibatch = PPO
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    # Token 0 is the pad id, so prompts avoid it.
    prompts = torch.randint(1, VOCAB, (n_prompts, prompt_len), generator=g).tolist()
    dataset = Dataset.from_dict({"input_ids": prompts})
    policy = causal_lm(pad_token_id=0)
    ref = causal_lm(pad_token_id=0)
    ref.load_state_dict(policy.state_dict())
    value = scalar_model(pad_token_id=0)
    reward = scalar_model(pad_token_id=0)
    for m in (policy, ref):
        m.generation_config.eos_token_id = None
    iterations = repeats + 1
    times = StepTimes()
    with tempfile.TemporaryDirectory() as out:
        args = PPOConfig(
            output_dir=out,
            per_device_train_batch_size=n_prompts,
            gradient_accumulation_steps=1,
            num_mini_batches=n_prompts // minibatch,
            num_ppo_epochs=epochs,
            local_rollout_forward_batch_size=n_prompts,
            response_length=new_tokens,
            temperature=1.0,
            stop_token=None,
            missing_eos_penalty=None,
            total_episodes=n_prompts * iterations,
            learning_rate=1e-5,
            num_sample_generations=0,
            report_to=[],
            save_strategy="no",
            logging_steps=1000,
            use_cpu=True,
            bf16=False,
            gradient_checkpointing=False,
            seed=0,
        )
        trainer = PPOTrainer(
            args=args,
            processing_class=tokenizer(),
            model=policy,
            ref_model=ref,
            reward_model=reward,
            value_model=value,
            train_dataset=dataset,
            callbacks=[times],
        )
        trainer.train()
    episodes = rate(times.times, n_prompts)
    return {
        "episodes_per_s": episodes, "seconds_per_iteration": n_prompts / episodes,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def grpo(repeats):
    from trl import GRPOConfig, GRPOTrainer

    prompts_per_step, k, prompt_len, new_tokens = 8, 4, 16, 48
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    steps = repeats + 1
    # Token ids from 2: 0 is the pad and 1 the end of sequence.
    rows = torch.randint(2, VOCAB, (prompts_per_step * steps, prompt_len), generator=g).tolist()
    dataset = Dataset.from_dict({"prompt": words(rows)})
    policy = causal_lm(pad_token_id=0)
    reward = scalar_model(pad_token_id=0)
    tok = text_tokenizer()
    times = StepTimes()
    with tempfile.TemporaryDirectory() as out:
        args = GRPOConfig(
            output_dir=out,
            per_device_train_batch_size=prompts_per_step * k,
            num_generations=k,
            gradient_accumulation_steps=1,
            num_iterations=1,
            max_completion_length=new_tokens,
            temperature=1.0,
            beta=0.0,
            learning_rate=1e-5,
            max_steps=steps,
            report_to=[],
            save_strategy="no",
            logging_steps=1000,
            use_cpu=True,
            bf16=False,
            gradient_checkpointing=False,
            shuffle_dataset=False,
            seed=0,
        )
        trainer = GRPOTrainer(
            model=policy,
            reward_funcs=reward,
            args=args,
            train_dataset=dataset,
            processing_class=tok,
            reward_processing_classes=tok,
            callbacks=[times],
        )
        trainer.train()
    completions = rate(times.times, prompts_per_step * k)
    return {
        "episodes_per_s": completions, "seconds_per_step": prompts_per_step * k / completions,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def dpo(repeats):
    from trl import DPOConfig, DPOTrainer

    pairs, prompt_len, response_len = 16, 16, 48
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(2)
    steps = repeats + 1
    n = pairs * steps
    ids = lambda length: torch.randint(2, VOCAB, (n, length), generator=g).tolist()
    dataset = Dataset.from_dict(
        {"prompt": words(ids(prompt_len)), "chosen": words(ids(response_len)), "rejected": words(ids(response_len))}
    )
    policy = causal_lm(pad_token_id=0)
    ref = causal_lm(pad_token_id=0)
    ref.load_state_dict(policy.state_dict())
    times = StepTimes()
    with tempfile.TemporaryDirectory() as out:
        args = DPOConfig(
            output_dir=out,
            per_device_train_batch_size=pairs,
            gradient_accumulation_steps=1,
            max_steps=steps,
            max_length=None,
            max_prompt_length=None,
            beta=0.1,
            learning_rate=1e-5,
            precompute_ref_log_probs=False,
            report_to=[],
            save_strategy="no",
            logging_steps=1000,
            use_cpu=True,
            bf16=False,
            gradient_checkpointing=False,
            dataloader_drop_last=True,
            seed=0,
        )
        trainer = DPOTrainer(
            model=policy, ref_model=ref, args=args, processing_class=text_tokenizer(), train_dataset=dataset,
            callbacks=[times],
        )
        trainer.train()
    return {"pairs_per_s": rate(times.times, pairs), "seconds_per_step": pairs / rate(times.times, pairs)}


def rm(repeats):
    from trl import RewardConfig, RewardTrainer

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(2)
    steps = repeats + 1
    pairs = 16 * steps
    chosen = torch.randint(1, VOCAB, (pairs, 96), generator=g).tolist()
    rejected = torch.randint(1, VOCAB, (pairs, 96), generator=g).tolist()
    dataset = Dataset.from_dict({"chosen_input_ids": chosen, "rejected_input_ids": rejected})
    model = scalar_model(pad_token_id=0)
    times = StepTimes()
    with tempfile.TemporaryDirectory() as out:
        args = RewardConfig(
            output_dir=out,
            per_device_train_batch_size=16,
            gradient_accumulation_steps=1,
            max_steps=steps,
            max_length=None,
            learning_rate=1e-4,
            center_rewards_coefficient=None,
            report_to=[],
            save_strategy="no",
            logging_steps=1000,
            use_cpu=True,
            bf16=False,
            gradient_checkpointing=False,
            dataloader_drop_last=True,
            seed=0,
        )
        trainer = RewardTrainer(
            model=model, args=args, processing_class=tokenizer(), train_dataset=dataset, callbacks=[times]
        )
        trainer.train()
    return {"pairs_per_s": rate(times.times, 16), "seconds_per_step": 16 / rate(times.times, 16)}


def matmul_peak(repeats):
    """PyTorch's f32 rate on 1024^3 products in GFLOP/s (median of repeats)."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b
    times = []
    for _ in range(max(repeats, 5)):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * 1024**3 / sorted(times)[len(times) // 2] / 1e9


def sft(repeats):
    from trl import SFTConfig, SFTTrainer

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    # Two steps of warm-up, as `rlhf-tui bench sft` takes.
    steps = repeats + 2
    rows = torch.randint(1, VOCAB, (16 * steps, 128), generator=g).tolist()
    dataset = Dataset.from_dict({"input_ids": rows})
    model = causal_lm(pad_token_id=0)
    times = StepTimes()
    with tempfile.TemporaryDirectory() as out:
        args = SFTConfig(
            output_dir=out,
            per_device_train_batch_size=16,
            gradient_accumulation_steps=1,
            max_steps=steps,
            max_length=None,
            packing=False,
            learning_rate=1e-4,
            report_to=[],
            save_strategy="no",
            logging_steps=1000,
            use_cpu=True,
            bf16=False,
            gradient_checkpointing=False,
            dataloader_drop_last=True,
            seed=0,
        )
        trainer = SFTTrainer(
            model=model, args=args, processing_class=tokenizer(), train_dataset=dataset, callbacks=[times]
        )
        trainer.train()
    tokens = 16 * 128
    seconds = tokens / rate(times.times[1:], tokens)
    flops = 6 * MATMUL_PARAMS * tokens
    peak = matmul_peak(repeats)
    return {
        "tokens_per_s": tokens / seconds, "seconds_per_step": seconds, "model_gflop_per_s": flops / seconds / 1e9,
        "matmul_peak_gflop_per_s": peak, "mfu": flops / seconds / 1e9 / peak,
    }


def main():
    workload = sys.argv[1]
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    result = {"ppo": ppo, "grpo": grpo, "dpo": dpo, "rm": rm, "sft": sft}[workload](repeats)
    import trl

    print(json.dumps({
        "workload": workload, "shape": SHAPE, "peer": "trl", "version": trl.__version__,
        "threads": torch.get_num_threads(), **result,
    }))


if __name__ == "__main__":
    main()
