//! A delivery's outbound I/O: every GitHub request it makes is bounded by what is left of its one
//! deadline (`deadline`) and carries the configured credential (`app_auth`), and the KV writes that
//! need not delay its answer wait until the response has gone out. The registry's tiers and the
//! dispatch both send through it, so neither needs the delivery that sequences them.

use std::cell::RefCell;

use crate::app_auth;
use crate::config::Config;
use crate::deadline;
use crate::platform::{HttpRequest, HttpResponse, Platform, SendError};
use crate::respond::KvWrite;

pub struct Outbound<'a, P> {
    pub config: &'a Config,
    pub platform: &'a P,
    /// When the request started (the deadline counts from here).
    pub started_ms: u64,
    /// KV writes that need not delay the response (`Reply::after_response`).
    deferred: RefCell<Vec<KvWrite>>,
}

impl<'a, P: Platform> Outbound<'a, P> {
    /// Starts the clock: create it when the request arrives, before its body is read.
    pub fn new(config: &'a Config, platform: &'a P) -> Self {
        Outbound {
            config,
            platform,
            started_ms: platform.now_ms(),
            deferred: RefCell::default(),
        }
    }

    /// What is left of the delivery's deadline.
    pub fn remaining_ms(&self) -> u64 {
        deadline::remaining_ms(self.started_ms, self.platform.now_ms())
    }

    /// Sends a request bounded by what is left of the deadline.
    pub async fn send(&self, mut request: HttpRequest) -> Result<HttpResponse, SendError> {
        let remaining = self.remaining_ms();
        if remaining == 0 {
            return Err(SendError::TimedOut { after_ms: 0 });
        }
        request.timeout_ms = remaining;
        app_auth::send_authorized(self.config, self.platform, request).await
    }

    /// Queues a KV write for after the response (`ctx.waitUntil` in the worker).
    pub fn defer(&self, write: KvWrite) {
        self.deferred.borrow_mut().push(write);
    }

    /// The writes queued so far, in the order they were queued, for the reply.
    pub fn take_deferred(&self) -> Vec<KvWrite> {
        self.deferred.take()
    }
}
