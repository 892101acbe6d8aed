//! Sets of responses for the comparison pane and the labeling queue: K
//! samples (2 for a pair) from the current policy for one labeling prompt
//! at temperatures spread around the live one, each token with its
//! log-prob under the policy and under the frozen reference (so the pane
//! can colour tokens by their per-token KL), the reward model's score and
//! the evaluator's.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use rand::SeedableRng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;

use super::protocol::{Response, SampleSet, Stage};
use super::run_data::RunData;
use super::stage::{newest_trained, supervised};
use crate::model::{CausalLm, ScalarModel, Tokenizer, hf};
use crate::rlhf::data::Prompt;
use crate::rlhf::ppo::rollout::{QueryResponse, episode_scores, response_logprobs};
use crate::run::{RunConfig, RunDir};

/// The models a pair is drawn and scored with.
pub struct PairModels<'a> {
    pub policy: &'a CausalLm,
    pub reference: &'a CausalLm,
    pub reward: Option<&'a ScalarModel>,
    pub tokenizer: &'a Tokenizer,
    /// Names the policy in the pair, e.g. `ppo-12`.
    pub version: String,
}

/// Draws of a response that repeats one already in its set, at most.
const REDRAWS: u64 = 4;

/// The prompt of set `id`: one of the labeling prompts (training prompts
/// unless the run names others; the held-out prompts are what the reward
/// model's accuracy and calibration are measured on).
fn labeling_prompt(id: u64, prompts: &[Prompt]) -> Option<Prompt> {
    prompts.choose(&mut ChaCha8Rng::seed_from_u64(id)).cloned()
}

/// Responses of at most `max_new_tokens` to one labeling prompt, one at
/// each temperature; the set's id seeds the draw. The prompt is laid out
/// as the policy reads it.
pub fn sample_set(
    models: &PairModels,
    data: &RunData,
    id: u64,
    temperatures: &[f32],
    max_new_tokens: usize,
) -> Result<SampleSet, String> {
    let asked = labeling_prompt(id, &data.labeling).ok_or("the run has no prompts to label")?;
    let tokenizer = models.tokenizer;
    let text = tokenizer.chat().prompt_text(&asked)?;
    let eos = tokenizer.eos_id();
    let pad = tokenizer.pad_id().unwrap_or(0);
    let query = tokenizer.try_encode(&text)?;
    // One at a time: each response has its own temperature, and its
    // log-probs under the reference are taken at that temperature too.
    let mut responses = Vec::with_capacity(temperatures.len());
    let mut all_tokens = Vec::with_capacity(temperatures.len());
    for (i, &temperature) in temperatures.iter().enumerate() {
        let queries = vec![query.clone()];
        let sample = |attempt: u64| {
            let seed = id.wrapping_mul(31).wrapping_add(i as u64).wrapping_add(attempt << 32);
            crate::rlhf::online::sample(models.policy, &queries, (max_new_tokens, temperature), (eos, pad), seed)
        };
        // A response the set already has is drawn again (a few times at
        // most): two copies of one text ask the person nothing. Texts are
        // compared, since one text can be sampled as different tokens.
        let text_of = |tokens: &[u32]| {
            let end = tokens.iter().position(|&t| Some(t) == eos).unwrap_or(tokens.len());
            tokenizer.decode(&tokens[..end])
        };
        let mut generated = sample(0);
        for attempt in 1..=REDRAWS {
            let text = text_of(&generated.tokens[0]);
            if !all_tokens.iter().any(|t: &Vec<u32>| text_of(t) == text) {
                break;
            }
            generated = sample(attempt);
        }
        let tokens = &generated.tokens[0];
        let qr = QueryResponse::new(&queries, &generated.tokens, pad);
        let ref_logp: Vec<f32> = response_logprobs(models.reference, &qr, temperature)
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32");
        // EOS is not shown; its log-probs go with it.
        let shown = tokens.iter().take_while(|&&t| Some(t) != eos).count();
        responses.push(Response {
            tokens: tokenizer.token_texts(&tokens[..shown]),
            logprobs: generated.logprobs[0][..shown].to_vec(),
            ref_logprobs: ref_logp[..shown].to_vec(),
            reward: None,
            judge: None,
            temperature,
        });
        all_tokens.push(tokens.clone());
    }
    if let Some(rm) = models.reward {
        let queries = vec![query; all_tokens.len()];
        for (response, score) in responses
            .iter_mut()
            .zip(episode_scores(rm, &queries, &all_tokens, eos, pad))
        {
            response.reward = Some(score);
        }
    }
    Ok(SampleSet {
        id,
        prompt: text,
        asked,
        policy: models.version.clone(),
        responses,
        judge: Vec::new(),
    })
}

/// The run's models on disk, for pairs when no stage trains a policy: the
/// newest trained policy (`newest_trained`: PPO's, GRPO's, RLOO's or
/// DPO's), else the supervised one (else the base model) as the policy, the supervised checkpoint (CAI's, else SFT's, else the
/// base) as the reference, and the newest reward model if there is one.
pub struct DiskModels {
    pub policy: CausalLm,
    pub version: String,
    pub reference: CausalLm,
    pub reward: Option<ScalarModel>,
    pub tokenizer: Tokenizer,
}

impl DiskModels {
    pub fn load(run: &RunDir, config: &RunConfig, device: &Device) -> anyhow::Result<Self> {
        let base = config.sft.init.clone();
        let newest = |stage: Stage| run.latest_checkpoint(stage.name());
        let supervised = newest(supervised(run));
        let (policy_dir, version) = match newest_trained(run).or_else(|| supervised.clone()) {
            Some(dir) => {
                let version = checkpoint_name(&dir);
                (dir, version)
            }
            None => (base.clone(), "base".to_string()),
        };
        let reference_dir: PathBuf = supervised.unwrap_or(base);
        let (policy, tokenizer) = hf::load_language_model(&policy_dir, device)?;
        let reference = if reference_dir == policy_dir {
            policy.clone()
        } else {
            hf::load_language_model(&reference_dir, device)?.0
        };
        let reward = match newest(Stage::Rm) {
            Some(dir) => Some(hf::load_scalar_model(&dir, device, None)?.0),
            None => None,
        };
        Ok(Self {
            policy,
            version,
            reference,
            reward,
            tokenizer,
        })
    }

    pub fn pair_models(&self) -> PairModels<'_> {
        PairModels {
            policy: &self.policy,
            reference: &self.reference,
            reward: self.reward.as_ref(),
            tokenizer: &self.tokenizer,
            version: self.version.clone(),
        }
    }
}

/// `sft-60` for `runs/x/checkpoints/sft-60`.
fn checkpoint_name(dir: &Path) -> String {
    dir.file_name().unwrap_or_default().to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::labeling_prompt;
    use crate::rlhf::data::{Sources, Split};
    use crate::world::source::World;

    /// Sets to label never show a held-out prompt (what the reward model is
    /// evaluated on), and the ids spread over many prompts.
    #[test]
    fn labeling_prompts_are_training_prompts() {
        let held_out = World::default().prompts(Split::HeldOut);
        let labeling = World::default().labeling_prompts();
        let drawn: Vec<_> = (0..300).filter_map(|id| labeling_prompt(id, &labeling)).collect();
        assert!(drawn.iter().all(|p| !held_out.contains(p)));
        let distinct: std::collections::BTreeSet<String> = drawn.iter().map(|p| p.readable()).collect();
        assert!(distinct.len() > 50, "{} distinct prompts", distinct.len());
    }
}
