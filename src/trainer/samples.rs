//! Sets of responses for the comparison pane and the labeling queue: K
//! samples (2 for a pair) from the current policy for one training prompt
//! at temperatures spread around the live one, each token with its
//! log-prob under the policy and under the frozen reference (so the pane
//! can colour tokens by their per-token KL), the reward model's score and
//! the judge's; and the judge's verdicts on a set, for RLAIF.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use rand::SeedableRng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;

use super::protocol::{Choice, Criterion, Response, SampleSet, Stage, Verdict};
use crate::model::sampling::SamplingParams;
use crate::model::{CausalLm, GenerateConfig, ScalarModel, Tokenizer, generate, hf};
use crate::rlhf::ppo::rollout::{QueryResponse, episode_scores, response_logprobs};
use crate::run::{RunConfig, RunDir};
use crate::world::corpus::train_prompts;
use crate::world::eval::response_part;
use crate::world::generator::prompt_text;
use crate::world::judge::{Judgment, Preference, judge, preference};
use crate::world::tokenizer_training::EOS;

/// The models a pair is drawn and scored with.
pub struct PairModels<'a> {
    pub policy: &'a CausalLm,
    pub reference: &'a CausalLm,
    pub reward: Option<&'a ScalarModel>,
    pub tokenizer: &'a Tokenizer,
    /// Names the policy in the pair, e.g. `ppo-12`.
    pub version: String,
}

/// The prompt of set `id`: a training prompt, since what is labeled is
/// trained on, and the held-out prompts are what the reward model's
/// accuracy and calibration are measured on.
fn labeling_prompt(id: u64) -> String {
    let mut rng = ChaCha8Rng::seed_from_u64(id);
    train_prompts()
        .choose(&mut rng)
        .expect("the world has prompts")
        .text
        .clone()
}

/// Responses of at most `max_new_tokens` to one training prompt, one at
/// each temperature; the set's id seeds the draw.
pub fn sample_set(models: &PairModels, id: u64, temperatures: &[f32], max_new_tokens: usize) -> SampleSet {
    let prompt = labeling_prompt(id);
    let text = prompt_text(&prompt);
    let tokenizer = models.tokenizer;
    let eos = tokenizer.token_id(EOS);
    let pad = eos.unwrap_or(0);
    let query = tokenizer.encode(&text);
    // One at a time: each response has its own temperature, and its
    // log-probs under the reference are taken at that temperature too.
    let mut responses = Vec::with_capacity(temperatures.len());
    let mut all_tokens = Vec::with_capacity(temperatures.len());
    for (i, &temperature) in temperatures.iter().enumerate() {
        let queries = vec![query.clone()];
        let generated = generate(
            models.policy,
            &queries,
            &GenerateConfig {
                max_new_tokens,
                sampling: SamplingParams {
                    temperature,
                    top_k: 0,
                    top_p: 1.0,
                },
                eos_token_id: eos,
                pad_token_id: pad,
                seed: id.wrapping_mul(31).wrapping_add(i as u64),
            },
        );
        let tokens = &generated.tokens[0];
        let qr = QueryResponse::new(&queries, &generated.tokens, pad);
        let ref_logp: Vec<f32> = response_logprobs(models.reference, &qr, temperature)
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32");
        // EOS is not shown; its log-probs go with it.
        let shown = tokens.iter().take_while(|&&t| Some(t) != eos).count();
        let mut response = Response {
            tokens: tokenizer.token_texts(&tokens[..shown]),
            logprobs: generated.logprobs[0][..shown].to_vec(),
            ref_logprobs: ref_logp[..shown].to_vec(),
            reward: None,
            judge: None,
            temperature,
        };
        response.judge = Some(judge_response(&prompt, &response).score);
        responses.push(response);
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
    SampleSet {
        id,
        prompt: text,
        policy: models.version.clone(),
        responses,
        judge: Vec::new(),
    }
}

/// The judge's view of a response as shown and stored (its tokens'
/// text), so its score on the pane and its verdicts agree.
fn judge_response(prompt: &str, response: &Response) -> Judgment {
    judge(prompt, response_part(&response.text()))
}

/// The judge's verdicts on a set, under each criterion it scores (it has
/// no measure of truthfulness): for two responses, the better by more
/// than the tie margin, else a tie; for more, their order by score.
pub fn judge_verdicts(set: &SampleSet) -> Vec<(Criterion, Verdict)> {
    let judged: Vec<_> = set.responses.iter().map(|r| judge_response(&set.prompt, r)).collect();
    let score = |i: usize, criterion: Criterion| match criterion {
        Criterion::Overall => judged[i].score,
        _ => judged[i].criterion(criterion.name()),
    };
    [Criterion::Overall, Criterion::Helpful, Criterion::Harmless]
        .into_iter()
        .map(|criterion| {
            let verdict = if judged.len() == 2 {
                Verdict::Choice(match preference(score(0, criterion), score(1, criterion)) {
                    Preference::First => Choice::Left,
                    Preference::Second => Choice::Right,
                    Preference::Tie => Choice::Tie,
                })
            } else {
                let mut order: Vec<usize> = (0..judged.len()).collect();
                order.sort_by(|&a, &b| score(b, criterion).total_cmp(&score(a, criterion)));
                Verdict::Ranking(order)
            };
            (criterion, verdict)
        })
        .collect()
}

/// The run's models on disk, for pairs when no stage trains a policy: the
/// newest of PPO's and SFT's checkpoints (else the base model) as the
/// policy, the SFT checkpoint (else the base) as the reference, and the
/// newest reward model if there is one.
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
        let (policy_dir, version) = match newest(Stage::Ppo).or_else(|| newest(Stage::Sft)) {
            Some(dir) => {
                let version = checkpoint_name(&dir);
                (dir, version)
            }
            None => (base.clone(), "base".to_string()),
        };
        let reference_dir: PathBuf = newest(Stage::Sft).unwrap_or(base);
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
    use crate::world::corpus::held_out_prompts;

    /// Sets to label never show a held-out prompt (what the reward model is
    /// evaluated on), and the ids spread over many prompts.
    #[test]
    fn labeling_prompts_are_training_prompts() {
        let held_out: Vec<&str> = held_out_prompts().iter().map(|p| p.text.as_str()).collect();
        let drawn: std::collections::BTreeSet<String> = (0..300).map(labeling_prompt).collect();
        assert!(drawn.iter().all(|p| !held_out.contains(&p.as_str())));
        assert!(drawn.len() > 50, "{} distinct prompts", drawn.len());
    }
}
