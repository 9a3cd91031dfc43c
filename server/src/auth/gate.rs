//! The gateway's door: an axum middleware that lets a request through only with a bearer token
//! that verifies and grants the route's scope, and hands the handler its [`Principal`].
//!
//! Refusals are problem+json (`field: "authorization"`) with an RFC 6750 `WWW-Authenticate`
//! header: 401 for a missing or invalid token, 403 (naming the scope, also as the `scope`
//! member) for a valid token without the route's scope. An unknown route is refused like any
//! other before it is found missing, so routes cannot be probed without a token.

use super::{Principal, Refusal, Scope, Verifier};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use plantloop_wire::Problem;
use plantloop_wire::problem::PROBLEM_JSON;
use std::sync::Arc;

/// The realm named in `WWW-Authenticate`.
pub const REALM: &str = "plantloop";

/// The scope a request needs; `None` for the one open route, `/health` (liveness: it says only
/// that the process answers). Default deny: every path not named here needs `admin:read` (so a
/// route added later is never open by mistake), `/ready` and `/metrics` among them: they tell
/// how much the service took in and how its targets fare.
pub fn scope_for(method: &Method, path: &str) -> Option<Scope> {
    match path {
        "/health" => None,
        "/events" => Some(Scope::EventsWrite),
        p if p == "/webhooks" || p.starts_with("/webhooks/") => Some(Scope::WebhooksWrite),
        p if method == Method::POST
            && p.starts_with("/dead-letters/")
            && p.ends_with("/replay") =>
        {
            Some(Scope::AdminReplay)
        }
        _ => Some(Scope::AdminRead),
    }
}

/// The middleware: `Router::layer(axum::middleware::from_fn_with_state(verifier, gate::require))`.
pub async fn require(
    State(verifier): State<Arc<Verifier>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(scope) = scope_for(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    let principal = match bearer(request.headers()).and_then(|t| verifier.verify(t)) {
        Ok(p) => p,
        Err(r) => return unauthorized(&r),
    };
    if !principal.has(scope) {
        return forbidden(&principal, scope);
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

/// The token of `Authorization: Bearer <token>` (the scheme case-insensitive, RFC 7235).
pub fn bearer(headers: &HeaderMap) -> Result<&str, Refusal> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(Refusal::Missing)?
        .to_str()
        .map_err(|_| Refusal::NotBearer)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(Refusal::NotBearer)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(Refusal::NotBearer);
    }
    Ok(token.trim())
}

fn quoted(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c == '"' || c == '\\' || c.is_control() {
                '\''
            } else {
                c
            }
        })
        .collect()
}

fn with_challenge(mut r: Response, challenge: String) -> Response {
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

/// 401: no token, or one that does not verify.
pub fn unauthorized(why: &Refusal) -> Response {
    let p = Problem::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "Missing or invalid bearer token",
        why.to_string(),
    )
    .with_field("authorization");
    let challenge = match why {
        Refusal::Missing => format!("Bearer realm=\"{REALM}\""),
        other => format!(
            "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{}\"",
            quoted(&other.to_string())
        ),
    };
    with_challenge(p.into_response(), challenge)
}

/// 403: a valid token without the route's scope; the problem names the scope.
pub fn forbidden(principal: &Principal, scope: Scope) -> Response {
    let p = Problem::new(
        StatusCode::FORBIDDEN,
        "insufficient-scope",
        "The token lacks the scope this route needs",
        format!(
            "this route needs the scope {scope}, which the token of {:?} does not grant",
            principal.subject
        ),
    )
    .with_field("authorization");
    let mut body = serde_json::to_value(&p).unwrap_or_default();
    body["scope"] = scope.as_str().into();
    let mut r = (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    with_challenge(
        r,
        format!("Bearer realm=\"{REALM}\", error=\"insufficient_scope\", scope=\"{scope}\""),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_but_health_needs_a_scope() {
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(scope_for(&get, "/health"), None);
        assert_eq!(scope_for(&get, "/ready"), Some(Scope::AdminRead));
        assert_eq!(scope_for(&post, "/events"), Some(Scope::EventsWrite));
        assert_eq!(
            scope_for(&post, "/webhooks/erp"),
            Some(Scope::WebhooksWrite)
        );
        assert_eq!(scope_for(&get, "/dead-letters"), Some(Scope::AdminRead));
        assert_eq!(
            scope_for(&post, "/dead-letters/3/replay"),
            Some(Scope::AdminReplay)
        );
        assert_eq!(scope_for(&get, "/audit"), Some(Scope::AdminRead));
        assert_eq!(scope_for(&get, "/metrics"), Some(Scope::AdminRead));
        assert_eq!(scope_for(&get, "/anything-new"), Some(Scope::AdminRead));
        assert_eq!(scope_for(&get, "/health/"), Some(Scope::AdminRead));
    }

    #[test]
    fn only_a_bearer_header_carries_a_token() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), Err(Refusal::Missing));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), Err(Refusal::NotBearer));
        h.insert(header::AUTHORIZATION, "Bearer ".parse().unwrap());
        assert_eq!(bearer(&h), Err(Refusal::NotBearer));
        h.insert(header::AUTHORIZATION, "bearer a.b.c".parse().unwrap());
        assert_eq!(bearer(&h), Ok("a.b.c"));
    }
}
