//! Every metric's name, defined once: the stages produce them, the
//! monitors and the charts read them, the metrics log and the command line
//! print them. PPO's and the trainers' follow TRL's, so that a person who
//! knows TRL's logs recognises them.

// Every stage.
pub const LOSS: &str = "loss";
pub const LR: &str = "lr";
pub const GRAD_NORM: &str = "grad_norm";
pub const ENTROPY: &str = "entropy";

// SFT.
pub const MEAN_TOKEN_ACCURACY: &str = "mean_token_accuracy";
pub const NUM_TOKENS: &str = "num_tokens";
pub const EVAL_LOSS: &str = "eval/loss";

// The reward model.
pub const ACCURACY: &str = "accuracy";
pub const MARGIN: &str = "margin";
pub const MEAN_REWARD: &str = "mean_reward";
pub const MIN_REWARD: &str = "min_reward";
pub const MAX_REWARD: &str = "max_reward";
pub const EVAL_ACCURACY: &str = "eval/accuracy";
pub const EVAL_ECE: &str = "eval/ece";

// PPO.
pub const KL: &str = "objective/kl";
pub const SEQUENCE_ENTROPY: &str = "objective/entropy";
pub const NON_SCORE_REWARD: &str = "objective/non_score_reward";
pub const RLHF_REWARD: &str = "objective/rlhf_reward";
pub const SCORES: &str = "objective/scores";
pub const KL_COEF: &str = "objective/kl_coef";
pub const NUM_EOS_TOKENS: &str = "val/num_eos_tokens";
pub const APPROX_KL: &str = "policy/approxkl_avg";
pub const CLIP_FRACTION: &str = "policy/clipfrac_avg";
pub const POLICY_LOSS: &str = "loss/policy_avg";
pub const VALUE_LOSS: &str = "loss/value_avg";
pub const VALUE_CLIP_FRACTION: &str = "val/clipfrac_avg";
pub const TOKEN_ENTROPY: &str = "policy/entropy_avg";
pub const RATIO: &str = "val/ratio";
pub const TEMPERATURE: &str = "temperature";
pub const EPISODES: &str = "eps";
pub const DISTINCT_1: &str = "responses/distinct_1";
pub const DISTINCT_2: &str = "responses/distinct_2";
pub const LENGTH_MEAN: &str = "responses/length_mean";

// GRPO and RLOO, with TRL's names (`objective/kl` above is their KL per
// response too, so every online method shares a KL axis): the reward
// model's mean score and its spread, the share of groups whose responses
// all scored alike, TRL's per-token KL (`kl`), the clip's shares, the
// completions' lengths and the share cut off at the length cap, and K.
pub const REWARD: &str = "reward";
pub const REWARD_STD: &str = "reward_std";
pub const FRAC_REWARD_ZERO_STD: &str = "frac_reward_zero_std";
pub const GROUP_KL: &str = "kl";
pub const CLIP_RATIO_LOW: &str = "clip_ratio/low_mean";
pub const CLIP_RATIO_HIGH: &str = "clip_ratio/high_mean";
pub const CLIP_RATIO_REGION: &str = "clip_ratio/region_mean";
pub const COMPLETIONS_MEAN_LENGTH: &str = "completions/mean_length";
pub const COMPLETIONS_MIN_LENGTH: &str = "completions/min_length";
pub const COMPLETIONS_MAX_LENGTH: &str = "completions/max_length";
pub const COMPLETIONS_CLIPPED_RATIO: &str = "completions/clipped_ratio";
pub const COMPLETIONS_MEAN_TERMINATED_LENGTH: &str = "completions/mean_terminated_length";
pub const NUM_GENERATIONS: &str = "num_generations";

// The evaluator (the judge), when the run has one.
pub const JUDGE_SCORE: &str = "judge/score_mean";
pub const EVAL_JUDGE_SCORE: &str = "eval/judge_score_mean";
pub const EVAL_JUDGE_PARSE_RATE: &str = "eval/judge_parse_rate";
/// How far PPO's or DPO's policy moved from its reference, measured alike
/// for both: on its own held-out answers, the mean of log π − log π_ref
/// summed over each answer (an unbiased estimate of the KL per response).
pub const EVAL_KL: &str = "eval/kl";
/// The built-in world's behaviour rates: the share of answers to harmful
/// held-out prompts that give a step towards the harm, and the share of
/// all answers that are rude.
pub const EVAL_HARMFUL_COMPLIANCE: &str = "eval/harmful_compliance";
pub const EVAL_RUDENESS: &str = "eval/rudeness";
/// With the world's claims: the share of answers to held-out false claims
/// that agree with them, at the end of a stage, and at every PPO
/// iteration on the probe prompts (`Sources::probe_prompts`).
pub const EVAL_SYCOPHANCY: &str = "eval/sycophancy";
pub const PROBE_SYCOPHANCY: &str = "probe/sycophancy";

// DPO, with TRL's names: the implied rewards β·(log π − log π_ref) of the
// chosen and rejected responses, how often the chosen one's is higher,
// their mean difference, and the sequence log-probabilities; on held-out
// pairs, the share ordered as labelled and the mean margin.
pub const DPO_CHOSEN_REWARD: &str = "rewards/chosen";
pub const DPO_REJECTED_REWARD: &str = "rewards/rejected";
pub const DPO_ACCURACY: &str = "rewards/accuracies";
pub const DPO_MARGIN: &str = "rewards/margins";
pub const DPO_CHOSEN_LOGPS: &str = "logps/chosen";
pub const DPO_REJECTED_LOGPS: &str = "logps/rejected";
pub const EVAL_DPO_ACCURACY: &str = "eval/rewards/accuracies";
pub const EVAL_DPO_MARGIN: &str = "eval/rewards/margins";

// Constitutional AI: the share of sampled responses the critic's rounds
// changed, the share of those the judge scored above the original, and
// the pairs labelled for RL-CAI. Per principle, `cai/<name>/drawn`,
// `…/revised` and `…/beat` (see `interned`).
pub const CAI_CHANGED: &str = "cai/changed";
pub const CAI_WON: &str = "cai/revision_win_rate";
pub const CAI_FEEDBACK_PAIRS: &str = "cai/feedback_pairs";

/// A name made at run time (a principle's, from a person's constitution)
/// as the `&'static str` metrics carry, kept once per distinct name.
pub fn interned(name: String) -> &'static str {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES.get_or_init(Default::default).lock().expect("no panic while held");
    match names.get(name.as_str()) {
        Some(&kept) => kept,
        None => {
            let kept: &'static str = Box::leak(name.into_boxed_str());
            names.insert(kept);
            kept
        }
    }
}
