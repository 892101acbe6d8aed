"""What each kind of trainer lets the workbench do, and how a change is
made to it: which workbench stage its charts belong to, where its β and
sampling temperature live, and the learning rate set through the
optimizer's parameter groups with the scheduler told."""

# The workbench's stage for each trainer class (by name, so no trainer
# module need be importable).
STAGES = {
    "SFTTrainer": "sft",
    "RewardTrainer": "rm",
    "PPOTrainer": "ppo",
    "GRPOTrainer": "grpo",
    "RLOOTrainer": "rloo",
    "DPOTrainer": "dpo",
}
ALL_STAGES = ["sft", "cai", "rm", "ppo", "grpo", "rloo", "dpo"]


def class_name(trainer):
    for cls in type(trainer).__mro__:
        if cls.__name__ in STAGES:
            return cls.__name__
    return type(trainer).__name__


def stage_of(trainer):
    # A plain transformers Trainer fine-tunes: its charts are SFT's.
    return STAGES.get(class_name(trainer), "sft")


def samples_logged(trainer):
    """GRPO and RLOO keep the newest generation batch's prompts, completions
    and rewards (`_logs`): the sample sets come from there."""
    logs = getattr(trainer, "_logs", None)
    return isinstance(logs, dict) and "completion" in logs and "prompt" in logs


def beta(trainer):
    """The trainer's KL coefficient, or None where it has none to change."""
    name = class_name(trainer)
    if name == "PPOTrainer":
        return float(trainer.args.kl_coef)
    if name in ("GRPOTrainer", "RLOOTrainer"):
        # β 0 at the start loads no reference model: there is nothing a
        # later β could pull towards.
        if getattr(trainer, "ref_model", None) is None and trainer.beta == 0.0:
            return None
        return float(trainer.beta)
    if name == "DPOTrainer":
        return float(trainer.beta)
    return None


def set_beta(trainer, value):
    if class_name(trainer) == "PPOTrainer":
        object.__setattr__(trainer.args, "kl_coef", value)
    else:
        trainer.beta = value
    return beta(trainer)


def temperature(trainer):
    """The sampling temperature where the trainer reads it at every
    generation (GRPO and RLOO without vLLM), else None."""
    if not samples_logged(trainer) or getattr(trainer, "use_vllm", False):
        return None
    return float(trainer.temperature)


def set_temperature(trainer, value):
    # The generation config samples; `temperature` divides the logits when
    # the log-probabilities are computed: both, or the ratio is off.
    trainer.temperature = value
    trainer.generation_config.temperature = value
    kwargs = getattr(trainer, "generation_kwargs", None)
    if isinstance(kwargs, dict):
        kwargs["temperature"] = value
    # What the next generation samples at.
    return float(trainer.generation_config.temperature)


def _scheduler(trainer):
    sched = getattr(trainer, "lr_scheduler", None)
    # accelerate wraps the scheduler; the schedule is the inner one's.
    return getattr(sched, "scheduler", sched)


def peak_lr(trainer):
    """The schedule's peak learning rate (what `learning_rate` set)."""
    sched = _scheduler(trainer)
    base = getattr(sched, "base_lrs", None)
    if base:
        return float(base[0])
    return float(trainer.args.learning_rate)


def current_lr(trainer):
    return float(trainer.optimizer.param_groups[0]["lr"])


def set_lr(trainer, value):
    """Scales the schedule to peak at `value`: the scheduler's base rates,
    and the rate each parameter group has now (so the next step uses it,
    and the schedule goes on from there)."""
    factor = value / peak_lr(trainer)
    sched = _scheduler(trainer)
    if getattr(sched, "base_lrs", None):
        sched.base_lrs = [b * factor for b in sched.base_lrs]
    for group in trainer.optimizer.param_groups:
        group["lr"] *= factor
        if "initial_lr" in group:
            group["initial_lr"] *= factor
    if hasattr(sched, "_last_lr"):
        sched._last_lr = [g["lr"] for g in trainer.optimizer.param_groups]
    return current_lr(trainer)


def group_size(trainer):
    k = getattr(trainer, "num_generations", None)
    return int(k) if k else None


def controls(trainer):
    """The workbench controls this trainer takes (rlhf-tui's `Control`)."""
    supported = ["pause", "step", "checkpoint", "learning_rate"]
    # experimental PPO's own loop never reads `should_training_stop`.
    if class_name(trainer) != "PPOTrainer":
        supported.append("stop")
    if beta(trainer) is not None:
        supported.append("beta")
    if temperature(trainer) is not None:
        supported.append("temperature")
    if samples_logged(trainer):
        supported += ["label", "samples"]
    return supported
