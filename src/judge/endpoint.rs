//! A judge behind an OpenAI-compatible chat-completions endpoint (what
//! vLLM, llama.cpp's server, Ollama and hosted APIs speak): one request a
//! question, with a timeout, retries with exponential backoff on network
//! errors, 429 and 5xx, and at most `concurrency` requests at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Where the judge is and how to call it (`judge.kind: Endpoint((…))`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EndpointConfig {
    /// The API's base, e.g. `http://localhost:8000/v1`; requests go to
    /// `{base_url}/chat/completions`.
    pub base_url: String,
    /// The model the endpoint serves.
    pub model: String,
    /// The environment variable holding the API key, if the endpoint needs one.
    pub api_key_env: Option<String>,
    /// Seconds a request may take, all of it.
    pub timeout_secs: f64,
    /// Attempts after the first for a request that failed on the way.
    pub retries: u32,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Tokens a reply may have (verdicts and scores are short).
    pub max_tokens: u32,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            base_url: "http://localhost:8000/v1".into(),
            model: String::new(),
            api_key_env: None,
            timeout_secs: 30.0,
            retries: 3,
            concurrency: 4,
            max_tokens: 16,
        }
    }
}

/// A client for one endpoint.
pub struct Endpoint {
    config: EndpointConfig,
    key: Option<String>,
    agent: ureq::Agent,
    /// The first retry waits this long; each next one twice as long.
    backoff: Duration,
}

impl Endpoint {
    /// A client; the key's variable, when named, must be set.
    pub fn new(config: &EndpointConfig) -> Result<Self, String> {
        if config.model.trim().is_empty() {
            return Err("judge: the endpoint's model is not named (judge.kind: Endpoint((model: …)))".into());
        }
        let key = match &config.api_key_env {
            Some(var) => Some(std::env::var(var).map_err(|_| {
                format!("judge: the API key's variable {var} is not set; export it, or leave api_key_env out")
            })?),
            None => None,
        };
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs_f64(config.timeout_secs.max(0.001))))
            .http_status_as_error(false)
            .build()
            .into();
        Ok(Self {
            config: config.clone(),
            key,
            agent,
            backoff: Duration::from_millis(250),
        })
    }

    /// With retries waiting `first` at first (tests keep it short).
    pub fn with_backoff(mut self, first: Duration) -> Self {
        self.backoff = first;
        self
    }

    pub fn model(&self) -> &str {
        &self.config.model
    }

    /// The reply's text to `system` and `user`, after up to `retries`
    /// more attempts; the error says what the last attempt met.
    pub fn ask(&self, system: &str, user: &str) -> Result<String, String> {
        let url = format!("{}/chat/completions", self.config.base_url.trim_end_matches('/'));
        let body = json!({
            "model": self.config.model,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
            "temperature": 0,
            "max_tokens": self.config.max_tokens,
        });
        let mut wait = self.backoff;
        let mut attempt = 0;
        loop {
            match self.post(&url, &body) {
                Ok(reply) => return Ok(reply),
                Err((_, true)) if attempt < self.config.retries => {
                    attempt += 1;
                    std::thread::sleep(wait);
                    wait *= 2;
                }
                Err((why, _)) => {
                    let tries = attempt + 1;
                    return Err(format!(
                        "{url}: {why} ({tries} attempt{})",
                        if tries == 1 { "" } else { "s" }
                    ));
                }
            }
        }
    }

    /// One attempt; an error says whether another attempt may succeed.
    fn post(&self, url: &str, body: &Value) -> Result<String, (String, bool)> {
        let mut request = self.agent.post(url).header("Content-Type", "application/json");
        if let Some(key) = &self.key {
            request = request.header("Authorization", &format!("Bearer {key}"));
        }
        let mut response = request.send_json(body).map_err(|e| (e.to_string(), true))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| (e.to_string(), true))?;
        if status != 200 {
            let retry = status == 429 || status >= 500;
            let detail: String = text.chars().take(200).collect();
            return Err((format!("HTTP {status}: {detail}"), retry));
        }
        let reply: Value = serde_json::from_str(&text).map_err(|e| (format!("the reply is not JSON: {e}"), false))?;
        reply["choices"][0]["message"]["content"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| ("the reply has no choices[0].message.content".to_string(), false))
    }

    /// `f` over every item, at most `concurrency` at once, in order.
    pub fn each<T: Sync, R: Send>(&self, items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
        let next = AtomicUsize::new(0);
        let workers = self.config.concurrency.clamp(1, items.len().max(1));
        let mut done: Vec<(usize, R)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    scope.spawn(|| {
                        let mut out = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(item) = items.get(i) else { break };
                            out.push((i, f(item)));
                        }
                        out
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("a judge request does not panic"))
                .collect()
        });
        done.sort_by_key(|(i, _)| *i);
        done.into_iter().map(|(_, r)| r).collect()
    }
}
