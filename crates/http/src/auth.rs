//! The token: a server that listens on anything but loopback must have one, and then answers
//! only calls that carry it, as `Authorization: Bearer <token>` or as the cookie
//! [`TOKEN_COOKIE`] (percent-encoded; what the dashboard's live stream can send, since a
//! browser's `EventSource` sends no headers). Only the dashboard's page and files and `/healthz`
//! answer without it ([`is_public`]): the reads show customers' names and addresses, and the
//! live stream every new return id.
//!
//! The token is compared in constant time (both sides hashed to fixed-length digests, then
//! compared without an early exit), never logged, and never shown by `Debug`. A missing or wrong
//! token is a 401 in the usual JSON error shape, with `WWW-Authenticate: Bearer`.
//!
//! Whatever the address, [`refuse_cross_site_writes`] answers 403 to a write a browser sends
//! from a page of another origin (a cross-site form can post without any token on loopback).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

use crate::HttpError;

/// The shortest token accepted: a short one is guessed.
pub const MIN_TOKEN_LEN: usize = 16;

/// A bearer token. Its `Debug` shows `Token(***)`.
#[derive(Clone)]
pub struct Token(Arc<str>);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token is shorter than {MIN_TOKEN_LEN} characters")]
    TooShort,
    #[error("the token may hold only visible ASCII characters (no spaces)")]
    NotVisibleAscii,
}

impl Token {
    /// A token, without the whitespace around it (as read from a file).
    pub fn new(token: &str) -> Result<Token, TokenError> {
        let token = token.trim();
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TokenError::NotVisibleAscii);
        }
        if token.len() < MIN_TOKEN_LEN {
            return Err(TokenError::TooShort);
        }
        Ok(Token(token.into()))
    }

    /// Whether `presented` is this token, in time that does not depend on where they differ.
    pub fn matches(&self, presented: &str) -> bool {
        let (ours, theirs) = (
            Sha256::digest(self.0.as_bytes()),
            Sha256::digest(presented.as_bytes()),
        );
        let difference = ours
            .iter()
            .zip(theirs.iter())
            .fold(0u8, |d, (a, b)| d | (a ^ b));
        std::hint::black_box(difference) == 0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

impl std::str::FromStr for Token {
    type Err = TokenError;

    fn from_str(s: &str) -> Result<Token, TokenError> {
        Token::new(s)
    }
}

/// Whether a server on `addr` must have a token: anything but loopback (`0.0.0.0` and `::`
/// included) can be reached by others.
pub fn needs_token(addr: &SocketAddr) -> bool {
    !addr.ip().to_canonical().is_loopback()
}

/// Why a server did not start listening.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("cannot resolve the address {addr} to listen on: {source}")]
    Resolve {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("refusing to listen on {addr} without a token: anyone who reaches it could submit returns (hint: give a token of at least {MIN_TOKEN_LEN} characters in RETURNS_TOKEN or a file named by --token-file, or listen on 127.0.0.1)")]
    NeedsToken { addr: String },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// Listen on `addr` (`IP:PORT` or `HOST:PORT`), refusing, before anything listens, an address
/// off loopback when there is no token.
pub async fn listen(addr: &str, has_token: bool) -> Result<TcpListener, ListenError> {
    let resolve = |source| ListenError::Resolve {
        addr: addr.to_string(),
        source,
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(addr)
        .await
        .map_err(resolve)?
        .collect();
    if addrs.is_empty() {
        return Err(resolve(std::io::ErrorKind::AddrNotAvailable.into()));
    }
    let refuse = || ListenError::NeedsToken {
        addr: addr.to_string(),
    };
    if !has_token && addrs.iter().any(needs_token) {
        return Err(refuse());
    }
    let bind = |source| ListenError::Bind {
        addr: addr.to_string(),
        source,
    };
    let listener = TcpListener::bind(&addrs[..]).await.map_err(bind)?;
    match listener.local_addr() {
        Ok(local) if !has_token && needs_token(&local) => Err(refuse()),
        Ok(_) => Ok(listener),
        Err(source) => Err(bind(source)),
    }
}

/// The cookie the dashboard keeps the token in.
pub const TOKEN_COOKIE: &str = "returns_token";

/// What answers without the token: `GET` of the dashboard's page and files, and `/healthz`.
pub fn is_public(method: &Method, path: &str) -> bool {
    let assets = crate::dashboard::ASSET_PATH.trim_end_matches("{file}");
    matches!(*method, Method::GET | Method::HEAD)
        && (path == crate::dashboard::DASHBOARD_PATH
            || path.starts_with(assets)
            || path == crate::api::HEALTHZ_PATH)
}

/// `router`, answering only calls that carry `token` (but [`is_public`] ones).
pub fn require_token(router: Router, token: Token) -> Router {
    router.layer(middleware::from_fn_with_state(token, check))
}

async fn check(State(token): State<Token>, request: Request, next: Next) -> Response {
    if is_public(request.method(), request.uri().path()) {
        return next.run(request).await;
    }
    let headers = request.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .map(|t| t.trim().to_string());
    let cookies = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie_tokens);
    let presented = bearer.into_iter().chain(cookies);
    let mut matched = false;
    for presented in presented {
        matched |= token.matches(&presented);
    }
    if matched {
        next.run(request).await
    } else {
        HttpError::Unauthorized.into_response()
    }
}

/// Every token in a `Cookie` header: the values of [`TOKEN_COOKIE`] and of
/// `returns_token_<anything>` (the dashboard names its cookie after its port), percent-decoded.
/// All are tried: a cookie of another server on the same host, or of a parent domain, may come
/// first.
fn cookie_tokens(header: &str) -> impl Iterator<Item = String> + '_ {
    header.split(';').filter_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        let ours = name == TOKEN_COOKIE
            || name
                .strip_prefix(TOKEN_COOKIE)
                .is_some_and(|rest| rest.starts_with('_'));
        ours.then(|| {
            percent_encoding::percent_decode_str(value.trim_matches('"'))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// `router`, answering 403 `cross_origin` to a write a browser sent from a page of another
/// origin: its `Sec-Fetch-Site` says anything but `same-origin` or `none`, or, without that
/// header, its `Origin` names another host and port than its `Host`. Calls from scripts and
/// tools (no such headers) pass.
pub fn refuse_cross_site_writes(router: Router) -> Router {
    router.layer(middleware::from_fn(same_origin))
}

async fn same_origin(request: Request, next: Next) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    let headers = request.headers();
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let origin = text("origin");
    // A browser that says where the request comes from is believed: behind a proxy that
    // rewrites `Host`, the dashboard's own writes would not match it. Only without that header
    // is `Origin` compared with `Host`.
    let foreign = match (text("sec-fetch-site"), origin, text("host")) {
        (Some(site), _, _) => !matches!(site, "same-origin" | "none"),
        // `null` is what a sandboxed or file page sends.
        (None, Some(origin), Some(host)) => {
            origin == "null"
                || origin
                    .split_once("://")
                    .is_none_or(|(_, authority)| !authority.eq_ignore_ascii_case(host))
        }
        (None, Some(_), None) => true,
        (None, None, _) => false,
    };
    if foreign {
        return HttpError::CrossOrigin(origin.unwrap_or("").chars().take(100).collect())
            .into_response();
    }
    next.run(request).await
}

/// `router`, for a server without a token (it listens on loopback only): answering 403
/// `foreign_host` to a request whose `Host` is not a loopback name. A DNS-rebinding page
/// reaches a loopback server under its own host name, with its own origin, and would
/// otherwise read every return and take teams offline. Requests without `Host` pass.
pub fn require_loopback_host(router: Router) -> Router {
    router.layer(middleware::from_fn(loopback_host))
}

async fn loopback_host(request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .map(|v| v.to_str().unwrap_or("?"));
    match host {
        Some(host) if !is_loopback_host(host) => {
            HttpError::ForeignHost(host.chars().take(100).collect()).into_response()
        }
        _ => next.run(request).await,
    }
}

/// `localhost`, `*.localhost`, an IPv4 address in 127.0.0.0/8 or `[::1]`, with or without a
/// port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                name
            } else {
                host
            }
        }),
    };
    let name = name.to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// The token of an `Authorization: Bearer <token>` value. The scheme is case-insensitive
/// (RFC 7235); the token is compared exactly, later, in constant time.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("Bearer").then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_the_token_is_not_touched() {
        for (value, token) in [
            ("Bearer s3cret", Some("s3cret")),
            ("bearer s3cret", Some("s3cret")),
            ("BEARER S3cret", Some("S3cret")),
            ("Basic s3cret", None),
            ("Bearers3cret", None),
            ("Bearer", None),
        ] {
            assert_eq!(bearer_token(value), token, "{value}");
        }
    }

    #[test]
    fn every_token_cookie_is_found_among_others_and_percent_decoded() {
        let all = |header| cookie_tokens(header).collect::<Vec<_>>();
        assert_eq!(all("a=1; returns_token=ab%3Bcd%25ef; b=2"), ["ab;cd%ef"]);
        assert_eq!(all("returns_token=\"quoted\""), ["quoted"]);
        assert_eq!(
            all("returns_token_8080=one; returns_token_9090=two; returns_token=three"),
            ["one", "two", "three"]
        );
        assert!(all("other=returns_token").is_empty());
        assert!(all("xreturns_token=1; returns_tokens=2").is_empty());
    }

    #[test]
    fn only_loopback_host_names_are_loopback() {
        for (host, loopback) in [
            ("127.0.0.1:8080", true),
            ("127.1.2.3", true),
            ("localhost:8080", true),
            ("LOCALHOST", true),
            ("app.localhost:1", true),
            ("[::1]:8080", true),
            ("[::1]", true),
            ("evil.example:8080", false),
            ("127.0.0.1.evil.example", false),
            ("localhost.evil.example:80", false),
            ("10.0.0.1:8080", false),
            ("[::2]:80", false),
            ("", false),
        ] {
            assert_eq!(is_loopback_host(host), loopback, "{host}");
        }
    }

    #[test]
    fn only_the_page_its_files_and_the_health_check_are_public() {
        for (method, path, public) in [
            (Method::GET, "/", true),
            (Method::GET, "/assets/app.js", true),
            (Method::HEAD, "/healthz", true),
            (Method::GET, "/events", false),
            (Method::GET, "/returns/x", false),
            (Method::GET, "/teams", false),
            (Method::GET, "/metrics", false),
            (Method::POST, "/", false),
            (Method::POST, "/healthz", false),
            (Method::OPTIONS, "/teams", false),
        ] {
            assert_eq!(is_public(&method, path), public, "{method} {path}");
        }
    }

    #[test]
    fn only_loopback_goes_without_a_token() {
        for (addr, needs) in [
            ("127.0.0.1:8080", false),
            ("127.0.0.2:8080", false),
            ("[::1]:8080", false),
            ("[::ffff:127.0.0.1]:8080", false),
            ("0.0.0.0:8080", true),
            ("[::]:8080", true),
            ("192.168.1.10:8080", true),
            ("[::ffff:10.0.0.1]:8080", true),
        ] {
            let addr: SocketAddr = addr.parse().unwrap();
            assert_eq!(needs_token(&addr), needs, "{addr}");
        }
    }

    #[tokio::test]
    async fn off_loopback_without_a_token_nothing_listens() {
        for addr in ["0.0.0.0:0", "[::]:0"] {
            let e = listen(addr, false).await.expect_err("refused");
            assert!(matches!(e, ListenError::NeedsToken { .. }), "{e}");
            assert!(e.to_string().contains("RETURNS_TOKEN"), "{e}");
        }
        let listener = listen("127.0.0.1:0", false)
            .await
            .expect("loopback needs none");
        assert!(listener.local_addr().unwrap().ip().is_loopback());
    }

    #[test]
    fn a_token_matches_only_itself_and_never_shows() {
        let token = Token::new("  s3cret-s3cret-s3cret\n").unwrap();
        assert!(token.matches("s3cret-s3cret-s3cret"));
        assert!(!token.matches("s3cret-s3cret-s3creT"));
        assert!(!token.matches("s3cret-s3cret-s3cret-and-more"));
        assert!(!token.matches(""));
        assert_eq!(format!("{token:?}"), "Token(***)");
        assert_eq!(Token::new("short").err(), Some(TokenError::TooShort));
        assert_eq!(
            Token::new("with a space inside it").err(),
            Some(TokenError::NotVisibleAscii)
        );
    }
}
