//! One backoff policy for every transient failure: a store busy or locked by another
//! connection, the log unreachable or moving its coordinator. The same work is tried again
//! after a pause that starts at [`RetryPolicy::first_backoff`] and doubles after each failure in
//! a row, up to [`RetryPolicy::max_backoff`].
//!
//! How long to keep trying is said at each call site, with [`Until`]: a running component
//! (a team, a relay, a view that follows the log) tries [`Until::Stopped`], for as long as the
//! failure lasts, since giving up would only stop it for nothing; a one-off step gives up after
//! [`Until::Elapsed`]. A failure that is not transient is returned at once.

use std::future::Future;
use std::time::{Duration, Instant};

use returns_eventlog::LogError;
use tokio_util::sync::CancellationToken;

use crate::ServiceError;

/// How a component rides out a transient failure.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// How long one store transaction waits for another connection's lock before it counts as
    /// a failed (busy) try.
    pub store_busy_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            first_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_secs(2),
            store_busy_timeout: Duration::from_secs(10),
        }
    }
}

/// How long a call site keeps trying.
#[derive(Debug, Clone)]
pub enum Until {
    /// As long as the failure lasts; a stop ends the waiting with the last error.
    Stopped(CancellationToken),
    /// Until this much time has passed since the first try; then the last error.
    Elapsed(Duration),
}

impl Until {
    /// The pause before the next try, or `None` if it is time to give up.
    fn allows(&self, started: Instant, pause: Duration) -> Option<Duration> {
        match self {
            Until::Stopped(stop) if stop.is_cancelled() => None,
            Until::Stopped(_) => Some(pause),
            Until::Elapsed(limit) => {
                let left = limit.checked_sub(started.elapsed())?;
                (!left.is_zero()).then(|| pause.min(left))
            }
        }
    }
}

/// An error that may pass if the same work is tried again later.
pub trait Transient: std::fmt::Display {
    fn is_transient(&self) -> bool;
}

impl Transient for ServiceError {
    fn is_transient(&self) -> bool {
        ServiceError::is_transient(self)
    }
}

impl Transient for LogError {
    fn is_transient(&self) -> bool {
        LogError::is_transient(self)
    }
}

/// Pauses that double after each failure in a row, up to the policy's longest.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(policy: &RetryPolicy) -> Self {
        Backoff {
            next: policy.first_backoff,
            max: policy.max_backoff,
        }
    }

    /// The pause before the next try; the one after it is twice as long.
    pub fn next_pause(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(self.max);
        pause
    }
}

/// Waits `pause`, or less if `stop` comes first; false when it did.
pub async fn pause(pause: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(pause) => true,
        _ = stop.cancelled() => false,
    }
}

/// The state of one piece of work being tried again: feed it each failure with
/// [`Retrier::wait_out`] (or [`Retrier::wait_out_blocking`]); it gives the error back when the
/// work should stop trying, and otherwise logs it and pauses. For work whose future borrows
/// from the caller (a subscription's commit), where [`retry`] cannot take a closure.
pub struct Retrier<'a> {
    until: &'a Until,
    what: &'a str,
    backoff: Backoff,
    started: Instant,
    attempt: u32,
}

impl<'a> Retrier<'a> {
    pub fn new(policy: &RetryPolicy, until: &'a Until, what: &'a str) -> Self {
        Retrier {
            until,
            what,
            backoff: Backoff::new(policy),
            started: Instant::now(),
            attempt: 1,
        }
    }

    /// `Ok` after the pause if `e` is worth another try; `Err(e)` if not.
    pub async fn wait_out<E: Transient>(&mut self, e: E) -> Result<(), E> {
        let Some(wait) = self.next(&e) else {
            return Err(e);
        };
        match self.until {
            Until::Stopped(stop) if !pause(wait, stop).await => Err(e),
            Until::Stopped(_) => Ok(()),
            Until::Elapsed(_) => {
                tokio::time::sleep(wait).await;
                Ok(())
            }
        }
    }

    /// [`Retrier::wait_out`] on the calling thread.
    pub fn wait_out_blocking<E: Transient>(&mut self, e: E) -> Result<(), E> {
        let Some(wait) = self.next(&e) else {
            return Err(e);
        };
        std::thread::sleep(wait);
        Ok(())
    }

    /// The pause before the next try, or `None` to stop trying.
    fn next<E: Transient>(&mut self, e: &E) -> Option<Duration> {
        if !e.is_transient() {
            return None;
        }
        let wait = self.until.allows(self.started, self.backoff.next_pause())?;
        tracing::warn!(error = %e, attempt = self.attempt, retry_in = ?wait, "{} failed; retrying", self.what);
        self.attempt += 1;
        Some(wait)
    }
}

/// Runs `op` until it succeeds, fails for good, or `until` says to stop trying; each transient
/// failure is logged with `what` and waited out.
pub async fn retry<T, E, Fut>(
    policy: &RetryPolicy,
    until: &Until,
    what: &str,
    mut op: impl FnMut() -> Fut,
) -> Result<T, E>
where
    E: Transient,
    Fut: Future<Output = Result<T, E>>,
{
    let mut retrier = Retrier::new(policy, until, what);
    loop {
        match op().await {
            Err(e) => retrier.wait_out(e).await?,
            ok => return ok,
        }
    }
}

/// [`retry`] for blocking work, on the calling thread.
pub fn retry_blocking<T, E: Transient>(
    policy: &RetryPolicy,
    until: &Until,
    what: &str,
    mut op: impl FnMut() -> Result<T, E>,
) -> Result<T, E> {
    let mut retrier = Retrier::new(policy, until, what);
    loop {
        match op() {
            Err(e) => retrier.wait_out_blocking(e)?,
            ok => return ok,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn quick() -> RetryPolicy {
        RetryPolicy {
            first_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(4),
            ..RetryPolicy::default()
        }
    }

    fn busy() -> LogError {
        LogError::Timeout {
            op: "test",
            seconds: 0,
        }
    }

    #[test]
    fn pauses_double_up_to_the_longest() {
        let mut b = Backoff::new(&quick());
        let pauses: Vec<u128> = (0..5).map(|_| b.next_pause().as_millis()).collect();
        assert_eq!(pauses, [1, 2, 4, 4, 4]);
    }

    #[tokio::test]
    async fn until_stopped_tries_as_long_as_the_failure_lasts() {
        let tries = AtomicU32::new(0);
        let stop = CancellationToken::new();
        let got: Result<u32, LogError> = retry(&quick(), &Until::Stopped(stop), "test", || async {
            match tries.fetch_add(1, Ordering::SeqCst) + 1 {
                n if n < 50 => Err(busy()),
                n => Ok(n),
            }
        })
        .await;
        assert_eq!(got.unwrap(), 50);
    }

    #[tokio::test]
    async fn a_stop_ends_the_waiting_with_the_last_error() {
        let stop = CancellationToken::new();
        let tries = AtomicU32::new(0);
        let got: Result<(), LogError> =
            retry(&quick(), &Until::Stopped(stop.clone()), "test", || {
                if tries.fetch_add(1, Ordering::SeqCst) == 3 {
                    stop.cancel();
                }
                async { Err(busy()) }
            })
            .await;
        assert!(got.unwrap_err().is_transient());
        assert_eq!(tries.load(Ordering::SeqCst), 4, "no try after the stop");
    }

    #[test]
    fn a_permanent_failure_is_returned_at_once_and_elapsed_gives_up() {
        let tries = AtomicU32::new(0);
        let got: Result<(), LogError> = retry_blocking(
            &quick(),
            &Until::Elapsed(Duration::from_secs(60)),
            "t",
            || {
                tries.fetch_add(1, Ordering::SeqCst);
                Err(LogError::Closed)
            },
        );
        assert!(matches!(got, Err(LogError::Closed)));
        assert_eq!(tries.load(Ordering::SeqCst), 1);

        let started = Instant::now();
        let got: Result<(), LogError> = retry_blocking(
            &quick(),
            &Until::Elapsed(Duration::from_millis(30)),
            "t",
            || Err(busy()),
        );
        assert!(got.unwrap_err().is_transient());
        assert!(started.elapsed() >= Duration::from_millis(30));
    }
}
