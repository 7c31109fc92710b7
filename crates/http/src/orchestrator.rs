//! User Support in the traditional model: it calls each team's endpoint in turn and must manage
//! every call, every failure and every half-finished return itself.
//!
//! It does what a plain implementation does, no better and no worse: each call has a timeout and
//! a bounded retry with backoff; the first team that still fails stops the return there, and the
//! customer is told it failed. Teams already called keep what they did (the return is partial);
//! teams after the failure are never called. Nothing is queued for later: a return that failed
//! stays as it is unless someone submits it again.

use std::time::{Duration, Instant};

use returns_domain::RefundRequest;
use returns_eventlog::wire::v2::RefundRequestV2;
use returns_services::TeamName;

/// How User Support calls the teams.
#[derive(Debug, Clone)]
pub struct CallPolicy {
    /// One call's timeout.
    pub timeout: Duration,
    /// Attempts per team, the first included.
    pub attempts: u32,
    /// Wait before the second attempt, doubled for each later one.
    pub backoff: Duration,
}

impl Default for CallPolicy {
    fn default() -> Self {
        CallPolicy {
            timeout: Duration::from_secs(2),
            attempts: 3,
            backoff: Duration::from_millis(50),
        }
    }
}

/// What happened to one return.
#[derive(Debug, Clone)]
pub struct Submission {
    pub return_id: String,
    /// Teams that answered with a decision, in call order.
    pub done: Vec<TeamName>,
    /// Teams that did not: the one that failed and every team after it.
    pub missing: Vec<TeamName>,
    /// Why the failing team failed, when one did.
    pub error: Option<String>,
    /// From the first call to the last answer.
    pub latency: Duration,
}

impl Submission {
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty()
    }
}

/// User Support's client for the four teams' endpoints.
#[derive(Debug, Clone)]
pub struct Orchestrator {
    client: reqwest::Client,
    /// Each team's endpoint URL, in the order User Support calls them.
    endpoints: Vec<(TeamName, String)>,
    policy: CallPolicy,
}

impl Orchestrator {
    pub fn new(endpoints: Vec<(TeamName, String)>, policy: CallPolicy) -> Self {
        let client = reqwest::Client::builder()
            .timeout(policy.timeout)
            .pool_max_idle_per_host(64)
            .build()
            .expect("an HTTP client with a timeout builds");
        Orchestrator {
            client,
            endpoints,
            policy,
        }
    }

    /// Handle one return the traditional way: call every team in turn.
    pub async fn submit(&self, request: &RefundRequest) -> Submission {
        let body =
            serde_json::to_vec(&RefundRequestV2::from(request)).expect("a request serializes");
        let started = Instant::now();
        let mut submission = Submission {
            return_id: request.return_id.to_string(),
            done: Vec::new(),
            missing: Vec::new(),
            error: None,
            latency: Duration::ZERO,
        };
        for (i, (team, url)) in self.endpoints.iter().enumerate() {
            match self.call(url, &body).await {
                Ok(()) => submission.done.push(*team),
                Err(e) => {
                    submission.error = Some(format!("{team}: {e}"));
                    submission.missing = self.endpoints[i..].iter().map(|(t, _)| *t).collect();
                    break;
                }
            }
        }
        submission.latency = started.elapsed();
        submission
    }

    /// One team: up to `attempts` calls. A 2xx is done; a 4xx will not get better and is not
    /// retried; a 5xx, a timeout or a refused connection is retried after a backoff.
    async fn call(&self, url: &str, body: &[u8]) -> Result<(), String> {
        let mut backoff = self.policy.backoff;
        let mut attempt = 1;
        loop {
            let result = self
                .client
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_vec())
                .send()
                .await;
            let error = match result {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) if r.status().is_client_error() => {
                    let status = r.status();
                    let text = r.text().await.unwrap_or_default();
                    return Err(format!("{status}: {text}"));
                }
                Ok(r) => format!("{}", r.status()),
                Err(e) if e.is_timeout() => format!("timed out after {:?}", self.policy.timeout),
                Err(e) => e.to_string(),
            };
            if attempt >= self.policy.attempts {
                return Err(format!("{error} (after {attempt} attempts)"));
            }
            attempt += 1;
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }
}
