"""A small TRL run served to the workbench, for tests/trl_bridge.rs and
to try the bridge by hand: GRPO or DPO on the built-in world's base model
(assets/base, 0.8M parameters) on the CPU, with rlhf_tui_bridge's callback.

    accelerate launch --multi_gpu --num_processes 2 tests/trl/run_trl.py grpo --run demo
    rlhf-tui attach --run demo
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "python"))

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast  # noqa: E402
from transformers.utils import import_utils as hf_imports  # noqa: E402

import trl.import_utils as trl_imports  # noqa: E402


# transformers 5 returns (exists, version) where trl 0.28 expects a bool, so
# trl takes every optional package for installed; ask transformers for the bool.
def package_available(name, return_version=False):
    exists, version = hf_imports._is_package_available(name, return_version=True)
    return (exists, version) if return_version else exists


trl_imports._is_package_available = package_available

from rlhf_tui_bridge import WorkbenchCallback  # noqa: E402

BASE = os.path.join(ROOT, "assets", "base")
QUESTIONS = [
    "What is tea?", "Tell me about rivers.", "Write a poem about the moon.", "How do I bake bread?",
    "What is a fox?", "Tell me a fact about stars.", "How do I plant a tree?", "What is rain?",
]


def prompt(q):
    return f"\n\nHuman: {q}\n\nAssistant:"


def tokenizer():
    return PreTrainedTokenizerFast(
        tokenizer_file=os.path.join(BASE, "tokenizer.json"), eos_token="<|endoftext|>", pad_token="<|endoftext|>"
    )


def brevity(completions, **_):
    """Rewards answers of about eight words."""
    return [-abs(len(c.split()) - 8) / 8.0 for c in completions]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("trainer", choices=["grpo", "dpo"])
    parser.add_argument("--run", required=True)
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--out", default=None)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--listen", default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    out = args.out or os.path.join(args.runs_dir, args.run, "trl")
    model = AutoModelForCausalLM.from_pretrained(BASE)
    tok = tokenizer()
    common = dict(
        output_dir=out, max_steps=args.steps, logging_steps=1, save_strategy="no", report_to=[],
        use_cpu=True, bf16=False, seed=0, learning_rate=1e-5, lr_scheduler_type="constant",
        per_device_train_batch_size=4, gradient_accumulation_steps=1,
    )
    if args.trainer == "grpo":
        from trl import GRPOConfig, GRPOTrainer

        data = Dataset.from_dict({"prompt": [prompt(q) for q in QUESTIONS] * 64})
        config = GRPOConfig(num_generations=4, max_completion_length=16, beta=0.04, temperature=1.0, **common)
        trainer = GRPOTrainer(model=model, reward_funcs=brevity, args=config, train_dataset=data,
                              processing_class=tok)
    else:
        from trl import DPOConfig, DPOTrainer

        rows = [(prompt(q), " It is a good thing to know.", " No.") for q in QUESTIONS] * 64
        data = Dataset.from_dict({"prompt": [r[0] for r in rows], "chosen": [r[1] for r in rows],
                                  "rejected": [r[2] for r in rows]})
        config = DPOConfig(beta=0.1, max_length=64, **common)
        trainer = DPOTrainer(model=model, args=config, train_dataset=data, processing_class=tok)
    trainer.add_callback(WorkbenchCallback(trainer, run=args.run, runs_dir=args.runs_dir, listen=args.listen))
    trainer.train()
    # Every rank leaves the process group before it exits: left to the
    # interpreter's shutdown, gloo's worker threads can outlive it and abort
    # the process (SIGABRT, "terminate called without an active exception").
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
