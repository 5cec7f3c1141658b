//! error: what went wrong talking to GitHub, named so an operator can act on it. Never holds a token.

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// GitHub answered with a non-2xx status. `message` is GitHub's JSON `message` (or the start of the
    /// body when it was not JSON).
    Status {
        method: String,
        path: String,
        status: u16,
        message: String,
    },
    /// A rate limit asked us to wait longer than the client's bound (or for the last time).
    RateLimited {
        method: String,
        path: String,
        wait_secs: u64,
    },
    /// No HTTP answer: DNS, connection, TLS, timeout.
    Transport {
        method: String,
        path: String,
        detail: String,
    },
    /// GitHub's answer did not have the shape we read; `detail` names the JSON path.
    Decode {
        method: String,
        path: String,
        detail: String,
    },
    /// A GraphQL call answered 200 with `errors`.
    GraphQl { messages: Vec<String> },
    /// Credentials could not be used (App key, installation lookup).
    Auth(String),
}

impl Error {
    /// The HTTP status, when GitHub gave one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Status {
                method,
                path,
                status,
                message,
            } => write!(f, "{method} {path}: GitHub answered {status}: {message}"),
            Error::RateLimited {
                method,
                path,
                wait_secs,
            } => write!(
                f,
                "{method} {path}: rate limited by GitHub (retry in {wait_secs} s)"
            ),
            Error::Transport {
                method,
                path,
                detail,
            } => write!(f, "{method} {path}: no answer from GitHub: {detail}"),
            Error::Decode {
                method,
                path,
                detail,
            } => write!(f, "{method} {path}: unexpected answer: {detail}"),
            Error::GraphQl { messages } => write!(f, "GraphQL: {}", messages.join("; ")),
            Error::Auth(detail) => write!(f, "GitHub authentication: {detail}"),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;
