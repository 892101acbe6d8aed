//! Scoring a batch of sampled responses under every model PPO needs: the
//! policy (log-probs and entropy, with gradient during the update), the
//! frozen reference (log-probs), the value model (a value per response
//! token) and the reward model (one score per episode).
//!
//! Layout: `b` episodes, queries left-padded to `q` columns and responses
//! right-padded to `r` (`PaddedBatch::query_response`). The distribution
//! over response token j comes from column `q − 1 + j`, so every `[b, r]`
//! tensor here is indexed by response token; `mask` is 1 on real tokens.

use std::ops::Range;

use burn::tensor::{Int, Tensor, TensorData};
use rayon::prelude::*;

use crate::kernels::own_thread;
use crate::model::batch::PaddedBatch;
use crate::model::logprobs::{gather_logprobs, target_stats};
use crate::model::{CausalLm, ScalarModel, Window};
use crate::rlhf::shards;

/// Queries and responses laid out for scoring.
pub struct QueryResponse {
    pub batch: PaddedBatch,
    /// Columns taken by the (left-padded) queries.
    pub q: usize,
    /// Columns taken by the (right-padded) responses.
    pub r: usize,
    /// `[b · r]` the response tokens (pad after each response's end).
    pub targets: Vec<i64>,
    /// `[b · r]` 1 on real response tokens.
    pub mask: Vec<f32>,
}

impl QueryResponse {
    pub fn new(queries: &[Vec<u32>], responses: &[Vec<u32>], pad_id: u32) -> Self {
        let (batch, q) = PaddedBatch::query_response(queries, responses, pad_id);
        let r = batch.cols - q;
        let mut targets = Vec::with_capacity(batch.rows * r);
        let mut mask = Vec::with_capacity(batch.rows * r);
        for response in responses {
            for j in 0..r {
                targets.push(response.get(j).map_or(pad_id as i64, |&t| t as i64));
                mask.push(if j < response.len() { 1.0 } else { 0.0 });
            }
        }
        Self {
            batch,
            q,
            r,
            targets,
            mask,
        }
    }

    /// A `[b, r]` tensor's rows, each cut to its response's length.
    pub fn per_response(&self, tensor: Tensor<2>) -> Vec<Vec<f32>> {
        let flat = tensor.into_data().try_to_vec::<f32>().expect("f32");
        let r = self.r;
        (0..self.batch.rows)
            .map(|i| {
                // The mask is 1 on a response's tokens, then 0 on padding.
                let len = self.mask[i * r..(i + 1) * r].iter().filter(|&&m| m > 0.0).count();
                flat[i * r..i * r + len].to_vec()
            })
            .collect()
    }

    pub fn mask_tensor(&self, device: &burn::tensor::Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(self.mask.clone(), [self.batch.rows, self.r]), device)
    }

    /// Final hidden states at the columns that predict response tokens, `[b, r, d]`.
    fn response_hidden(&self, body: &CausalLm) -> Tensor<3> {
        let device = body.device();
        let b = &self.batch;
        body.forward_window(
            b.ids_tensor(&device),
            b.positions_tensor(&device),
            b.mask_tensor(&device),
            &Window::uniform(b.rows, self.q - 1, self.r),
        )
    }
}

/// `logits / T` at the response positions, `[b, r, V]`, and the response
/// tokens, `[b, r]`.
fn response_logits(model: &CausalLm, qr: &QueryResponse, temperature: f32) -> (Tensor<3>, Tensor<2, Int>) {
    let device = model.device();
    // (h / T)·Wᵀ = (h·Wᵀ) / T: dividing the d-wide hidden states costs a
    // sixteenth of dividing the vocabulary-wide logits, forward and back.
    let logits = model.lm_logits(qr.response_hidden(model) / temperature.max(1e-6));
    let targets = Tensor::from_data(TensorData::new(qr.targets.clone(), [qr.batch.rows, qr.r]), &device);
    (logits, targets)
}

/// `log softmax(logits / T)` of each response token, `[b, r]`. T is the
/// sampling temperature, so these equal the sampler's log-probs for the
/// same weights.
pub fn response_logprobs(model: &CausalLm, qr: &QueryResponse, temperature: f32) -> Tensor<2> {
    let (logits, targets) = response_logits(model, qr, temperature);
    gather_logprobs(logits, targets)
}

/// `response_logprobs` and (without gradient) the entropy of each
/// position's distribution: what the policy's update reports.
pub fn response_logprobs_and_entropy(model: &CausalLm, qr: &QueryResponse, temperature: f32) -> (Tensor<2>, Tensor<2>) {
    let (logits, targets) = response_logits(model, qr, temperature);
    let stats = target_stats(logits, targets);
    (stats.logp, stats.entropy)
}

/// The value model's estimate at each response token, `[b, r]`.
pub fn response_values(value: &ScalarModel, qr: &QueryResponse) -> Tensor<2> {
    value.values(qr.response_hidden(&value.transformer))
}

/// The reward model's score of each whole episode, `[b]`, pooled at the
/// last response token or over the response, as the reward model pools
/// (EOS excluded: the reward model was trained on text without it).
pub fn episode_scores(
    reward: &ScalarModel,
    queries: &[Vec<u32>],
    responses: &[Vec<u32>],
    eos: Option<u32>,
    pad_id: u32,
) -> Vec<f32> {
    let seqs: Vec<Vec<u32>> = queries
        .iter()
        .zip(responses)
        .map(|(q, r)| {
            let body: Vec<u32> = r.iter().copied().take_while(|&t| Some(t) != eos).collect();
            [q.clone(), body].concat()
        })
        .collect();
    let starts: Vec<usize> = queries.iter().map(Vec::len).collect();
    crate::rlhf::reward::score_sequences(reward, &seqs, &starts, pad_id)
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32 scores")
}

/// What the models that stay fixed through a rollout's update say of its
/// episodes: per episode, the reference's log-prob of each response token,
/// the value model's value at each (none without a value model), and the
/// reward model's score.
#[derive(Default)]
pub struct FixedScores {
    pub reference: Vec<Vec<f32>>,
    pub values: Vec<Vec<f32>>,
    pub scores: Vec<f32>,
}

/// The models a rollout scores its episodes under, besides the policy
/// (whose log-probs the sampler gave).
#[derive(Clone, Copy)]
pub struct Scorers<'a> {
    pub reference: &'a CausalLm,
    pub value: Option<&'a ScalarModel>,
    pub reward: &'a ScalarModel,
    pub eos: Option<u32>,
    pub pad: u32,
}

/// One model's pass over some of a rollout's episodes.
#[derive(Clone, Copy)]
enum Pass<'a> {
    Reference,
    Value(&'a ScalarModel),
    Reward,
}

impl Scorers<'_> {
    /// Scores the episodes under each model. On the CPU the episodes are
    /// split into a shard per thread and every (model, shard) pass goes to
    /// the pool, each keeping its products on its own thread. Whole models
    /// side by side left a thread idle: at SmolLM2-135M's shape, PPO's
    /// three passes of 2.5, 2.1 and 1.5 s ran as 2.5 s on one thread and
    /// 3.6 s on the other; split so, they take 3.2–3.5 s.
    pub fn score(self, queries: &[Vec<u32>], responses: &[Vec<u32>], temperature: f32) -> FixedScores {
        let n = shards::count(&self.reference.device(), queries.len());
        let own = shards::fills_pool(n);
        let passes = [Some(Pass::Reference), self.value.map(Pass::Value), Some(Pass::Reward)];
        // Shard by shard, so that the pool's first split gives each thread
        // its shard of every model.
        let work: Vec<(Pass, Range<usize>)> = shards::ranges(queries.len(), n)
            .into_iter()
            .flat_map(|rows| passes.into_iter().flatten().map(move |pass| (pass, rows.clone())))
            .collect();
        let parts: Vec<(Pass, Vec<Vec<f32>>)> = work
            .into_par_iter()
            .map(|(pass, rows)| {
                let (queries, responses) = (&queries[rows.clone()], &responses[rows]);
                let scored = own_thread::keep(own, || self.pass(pass, queries, responses, temperature));
                (pass, scored)
            })
            .collect();
        let mut fixed = FixedScores::default();
        for (pass, rows) in parts {
            match pass {
                Pass::Reference => fixed.reference.extend(rows),
                Pass::Value(_) => fixed.values.extend(rows),
                Pass::Reward => fixed.scores.extend(rows.into_iter().flatten()),
            }
        }
        fixed
    }

    /// One model's pass over some episodes, a row each (the reward
    /// model's of one score).
    fn pass(self, pass: Pass, queries: &[Vec<u32>], responses: &[Vec<u32>], temperature: f32) -> Vec<Vec<f32>> {
        let per_token = |of: &dyn Fn(&QueryResponse) -> Tensor<2>| {
            let qr = QueryResponse::new(queries, responses, self.pad);
            qr.per_response(of(&qr))
        };
        match pass {
            Pass::Reference => per_token(&|qr| response_logprobs(self.reference, qr, temperature)),
            Pass::Value(value) => per_token(&|qr| response_values(value, qr)),
            Pass::Reward => episode_scores(self.reward, queries, responses, self.eos, self.pad)
                .into_iter()
                .map(|s| vec![s])
                .collect(),
        }
    }
}

/// Rows of different lengths as a `[rows, width]` tensor padded with 0.
pub fn padded<'a>(rows: impl Iterator<Item = &'a Vec<f32>>, width: usize, device: &burn::tensor::Device) -> Tensor<2> {
    let mut flat = Vec::new();
    let mut count = 0;
    for row in rows {
        flat.extend(row.iter().copied().chain(std::iter::repeat_n(0.0, width - row.len())));
        count += 1;
    }
    Tensor::from_data(TensorData::new(flat, [count, width]), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::hf;
    use crate::model::sampling::SamplingParams;
    use crate::model::weights::SeededInit;
    use crate::model::{GenerateConfig, Gpt2Config, generate};
    use crate::testutil::assert_close;
    use burn::tensor::Device;

    /// Scored over a pool of three threads (a shard of episodes each), and
    /// with one thread without a value model, every episode gets what each
    /// model gives it alone.
    #[test]
    fn scores_in_shards_equal_each_episodes_alone() {
        let device = Device::flex();
        let body = |seed| CausalLm::seeded(&Gpt2Config::new(64, 32, 16, 2, 2), seed, &device);
        let head = |seed| ScalarModel::build(body(seed), &mut SeededInit::new(seed + 10), &device).unwrap();
        let (reference, value, reward) = (body(1), head(2), head(3));
        let queries: Vec<Vec<u32>> = (0..7u32)
            .map(|i| (0..2 + i % 3).map(|j| 1 + (i * 5 + j) % 60).collect())
            .collect();
        // Lengths 1 to 5; the odd ones end at EOS (0), which scoring leaves out.
        let responses: Vec<Vec<u32>> = (0..7u32)
            .map(|i| {
                (0..1 + i % 5)
                    .map(|j| {
                        if i % 2 == 1 && j == i % 5 {
                            0
                        } else {
                            1 + (i * 3 + j * 7) % 60
                        }
                    })
                    .collect()
            })
            .collect();
        let scorers = Scorers {
            reference: &reference,
            value: Some(&value),
            reward: &reward,
            eos: Some(0),
            pad: 0,
        };
        let in_pool = |threads, scorers: Scorers| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| scorers.score(&queries, &responses, 0.7))
        };
        let sharded = in_pool(3, scorers);
        let unvalued = in_pool(1, Scorers { value: None, ..scorers });
        assert!(unvalued.values.is_empty());
        let values = sharded.values;
        let row = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().unwrap();
        for i in 0..queries.len() {
            let (q, r) = (&queries[i..=i], &responses[i..=i]);
            let qr = QueryResponse::new(q, r, 0);
            let alone = row(response_logprobs(&reference, &qr, 0.7));
            assert_close(&format!("reference {i}"), &sharded.reference[i], &alone, 1e-5);
            assert_close(
                &format!("reference {i}, one thread"),
                &unvalued.reference[i],
                &alone,
                1e-5,
            );
            assert_close(
                &format!("values {i}"),
                &values[i],
                &row(response_values(&value, &qr)),
                1e-5,
            );
            let score = episode_scores(&reward, q, r, Some(0), 0);
            assert_close(&format!("score {i}"), &[sharded.scores[i]], &score, 1e-5);
            assert_close(&format!("score {i}, one thread"), &[unvalued.scores[i]], &score, 1e-5);
        }
    }

    #[test]
    fn recomputed_logprobs_equal_the_samplers() {
        // The sampler's log-probs are what PPO's old log-probs would be
        // recomputed as; this is what lets the rollout skip that pass.
        let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/base"));
        let (model, tokenizer) = hf::load_language_model(dir, &Device::flex()).unwrap();
        let queries: Vec<Vec<u32>> = [
            "\n\nHuman: What is tea?\n\nAssistant:",
            "\n\nHuman: How do I bake bread?\n\nAssistant:",
        ]
        .iter()
        .map(|t| tokenizer.encode(t))
        .collect();
        let eos = model.eos_token_id().unwrap();
        let temperature = 0.7;
        let config = GenerateConfig {
            max_new_tokens: 24,
            sampling: SamplingParams {
                temperature,
                top_k: 0,
                top_p: 1.0,
            },
            eos_token_id: Some(eos),
            pad_token_id: eos,
            seed: 3,
        };
        let out = generate(&model, &queries, &config);
        let qr = QueryResponse::new(&queries, &out.tokens, eos);
        let (logp, entropy) = response_logprobs_and_entropy(&model, &qr, temperature);
        let logp = logp.into_data().try_to_vec::<f32>().unwrap();
        for (row, sampled) in out.logprobs.iter().enumerate() {
            for (j, lp) in sampled.iter().enumerate() {
                let got = logp[row * qr.r + j];
                assert!((got - lp).abs() < 1e-4, "row {row} token {j}: {got} vs {lp}");
            }
        }
        assert!(
            entropy
                .into_data()
                .try_to_vec::<f32>()
                .unwrap()
                .iter()
                .all(|&h| h >= -1e-6)
        );
    }
}
