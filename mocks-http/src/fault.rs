//! Fault injection as a tower layer over the capability routes, driven by the mocks'
//! [`FaultInjector`] so that the HTTP servers and the simulator decide alike.
//!
//! Time for the injector is measured from the server's start (fault windows `at`/`for` are offsets
//! from there); the seed makes the sequence of decisions reproducible for one sequence of calls.
//!
//! | decision | what the client sees |
//! |---|---|
//! | pass | the real answer, after the decided latency (the call is applied first) |
//! | no answer (outage) | nothing until `no_answer_hold` has passed (past any client timeout), then 503; not applied |
//! | throttle | 429 + `Retry-After`; not applied |
//! | server error | the 5xx; not applied |
//! | ack-then-timeout | applied, then nothing until `no_answer_hold`, then 503 |
//! | error body | 200 with a problem body; not applied |
//!
//! A held request ends early when the server shuts down.

use crate::app::render;
use axum::extract::Request;
use axum::response::Response;
use plantloop_core::time::Instant;
use plantloop_mocks::Reply;
use plantloop_mocks::fault::{FaultAction, FaultInjector, FaultProfile};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::watch;
use tower::{Layer, Service};

/// How long an unanswered request (outage, ack-then-timeout) is held by default.
pub const NO_ANSWER_HOLD_DEFAULT: Duration = Duration::from_secs(60);

/// A fault profile for one HTTP server.
#[derive(Clone, Debug)]
pub struct FaultConfig {
    pub profile: FaultProfile,
    /// Seeds the decisions.
    pub seed: u64,
    /// How long a request that gets no answer is held before the server gives up on it.
    pub no_answer_hold: Duration,
}

impl FaultConfig {
    /// `profile` with seed 0 and the default hold.
    pub fn new(profile: FaultProfile) -> FaultConfig {
        FaultConfig {
            profile,
            seed: 0,
            no_answer_hold: NO_ANSWER_HOLD_DEFAULT,
        }
    }
}

struct FaultState {
    decider: Mutex<(FaultInjector, ChaCha8Rng)>,
    origin: std::time::Instant,
    no_answer_hold: Duration,
    shutdown: watch::Receiver<bool>,
}

/// The tower layer; see the module doc.
#[derive(Clone)]
pub struct FaultLayer {
    state: Arc<FaultState>,
}

impl FaultLayer {
    /// A layer deciding with `config`, measuring time from now; held requests end on `shutdown`.
    pub fn new(config: FaultConfig, shutdown: watch::Receiver<bool>) -> FaultLayer {
        FaultLayer {
            state: Arc::new(FaultState {
                decider: Mutex::new((
                    FaultInjector::new(config.profile),
                    ChaCha8Rng::seed_from_u64(config.seed),
                )),
                origin: std::time::Instant::now(),
                no_answer_hold: config.no_answer_hold,
                shutdown,
            }),
        }
    }
}

impl<S> Layer<S> for FaultLayer {
    type Service = FaultService<S>;
    fn layer(&self, inner: S) -> FaultService<S> {
        FaultService {
            inner,
            state: self.state.clone(),
        }
    }
}

/// The service [`FaultLayer`] wraps around a route.
#[derive(Clone)]
pub struct FaultService<S> {
    inner: S,
    state: Arc<FaultState>,
}

impl FaultState {
    fn decide(&self) -> plantloop_mocks::fault::FaultDecision {
        let elapsed = u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX);
        let mut guard = self.decider.lock().unwrap_or_else(|p| p.into_inner());
        let (injector, rng) = &mut *guard;
        injector.decide(Instant::from_micros(elapsed), rng)
    }

    /// Holds an unanswered request past any client timeout, or until shutdown.
    async fn hold(&self) -> Response {
        let mut shutdown = self.shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(self.no_answer_hold) => {}
            _ = shutdown.wait_for(|stop| *stop) => {}
        }
        render(Reply::server_error(503), None)
    }
}

impl<S> Service<Request> for FaultService<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // The clone that was polled ready serves this call; a fresh clone stays behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        let decision = state.decide();
        let delay = Duration::from_micros(decision.delay.as_micros());
        Box::pin(async move {
            let response = match decision.action {
                FaultAction::Pass => inner.call(req).await?,
                FaultAction::NoAnswer => return Ok(state.hold().await),
                FaultAction::AckThenTimeout => {
                    let _lost = inner.call(req).await?;
                    return Ok(state.hold().await);
                }
                FaultAction::Throttle { retry_after } => {
                    render(Reply::throttled(retry_after), None)
                }
                FaultAction::ServerError { status } => render(Reply::server_error(status), None),
                FaultAction::ErrorBody => render(Reply::error_body(), None),
            };
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Ok(response)
        })
    }
}
