//! RFC 9457 problem details (`application/problem+json`) and the JSON body extractor that produces
//! them.
//!
//! Every error a mock server returns is a [`Problem`]: malformed JSON is 400, a body that breaks the
//! schema is 422 naming the field at fault, an oversize body 413, an unknown route 404, a wrong method
//! 405, a business rule 409. None of these touches a ledger: the body is rejected before the state
//! machine sees it.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The media type of problem details.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem details object, plus `field`: the request field at fault, as a dotted path
/// (`serials.first`), when one is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Problem {
    /// A URI naming the problem kind (`https://plantloop.dev/problems/conflict`).
    #[serde(rename = "type")]
    pub type_uri: String,
    /// A short summary of the problem kind; the same for every occurrence.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
    /// The request field at fault, if one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Problem {
    /// A problem of kind `slug` (the last part of its type URI).
    pub fn new(status: StatusCode, slug: &str, title: &str, detail: impl Into<String>) -> Problem {
        Problem {
            type_uri: format!("https://plantloop.dev/problems/{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
        }
    }

    /// Names the field at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> Problem {
        let f = field.into();
        self.field = if f.is_empty() { None } else { Some(f) };
        self
    }

    /// 400: the body is not JSON.
    pub fn malformed(detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed-json",
            "Malformed JSON body",
            detail,
        )
    }
    /// 422: the body is JSON but breaks the schema.
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-body",
            "Request body breaks the schema",
            detail,
        )
        .with_field(field)
    }
    /// 413: the body exceeds the server's limit.
    pub fn too_large(limit_bytes: usize) -> Problem {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "Request body too large",
            format!("the body exceeds the limit of {limit_bytes} bytes"),
        )
    }
    /// 404: no such route or resource.
    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }
    /// 405: the route exists but not with this method.
    pub fn method_not_allowed(method: &str, path: &str) -> Problem {
        Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
            format!("{method} is not allowed on {path}"),
        )
    }
    /// 415: the body is declared as something other than JSON.
    pub fn unsupported_media_type(got: &str) -> Problem {
        Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            format!("content-type {got:?} is not application/json"),
        )
    }

    /// The status as a [`StatusCode`] (500 if it is not a valid code).
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let body = serde_json::to_vec(&self).expect("a problem always serializes");
        let mut resp = (status, body).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        resp
    }
}

/// A JSON request body of type `T`, parsed with field paths so that a rejection names the field.
///
/// Rejections: 413 over the body limit, 415 for a non-JSON content type, 400 for malformed JSON,
/// 422 for a body that does not fit `T` (missing field, wrong type, a model rule).
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        check_content_type(req.headers())?;
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_problem)?;
        parse_body(&bytes).map(ApiJson)
    }
}

/// 415 unless the declared content type is JSON (`application/json` or `…+json`, any case, any
/// parameters); a missing content type is taken as JSON.
pub fn check_content_type(headers: &HeaderMap) -> Result<(), Problem> {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    if ct.as_bytes() == b"application/json" {
        // What nearly every client sends.
        return Ok(());
    }
    let ct = ct.to_str().unwrap_or("");
    let essence = ct.split(';').next().unwrap_or("").trim().as_bytes();
    let ends_with_ignore_case = |suffix: &[u8]| {
        essence.len() >= suffix.len()
            && essence[essence.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
    };
    if essence.eq_ignore_ascii_case(b"application/json") || ends_with_ignore_case(b"+json") {
        Ok(())
    } else {
        Err(Problem::unsupported_media_type(ct))
    }
}

/// The problem for a body that could not be read: 413 over the limit, else the rejection's status.
pub fn body_problem(rejection: BytesRejection) -> Problem {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::too_large(crate::BODY_BYTES_MAX)
    } else {
        Problem::new(
            rejection.status(),
            "unreadable-body",
            "Unreadable body",
            rejection.body_text(),
        )
    }
}

/// Parses a JSON body as `T`: 400 for malformed JSON, 422 naming the field for a schema violation.
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    // Fast path: a valid body parses once, without tracking paths. Only a refused one is parsed
    // again to find the field at fault.
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(v) => v,
        Err(e) => return Err(problem_from_path_error(e)),
    };
    de.end().map_err(|e| Problem::malformed(e.to_string()))?;
    Ok(value)
}

fn problem_from_path_error(e: serde_path_to_error::Error<serde_json::Error>) -> Problem {
    use serde_json::error::Category;
    let path = e.path().to_string();
    let inner = e.into_inner();
    match inner.classify() {
        Category::Syntax | Category::Eof | Category::Io => Problem::malformed(inner.to_string()),
        Category::Data => {
            let message = strip_position(&inner.to_string());
            let mut field = if path == "." { String::new() } else { path };
            // A missing field is reported at its parent: name the field itself.
            if let Some(missing) = message
                .strip_prefix("missing field `")
                .and_then(|r| r.split('`').next())
            {
                field = if field.is_empty() {
                    missing.to_owned()
                } else {
                    format!("{field}.{missing}")
                };
            }
            Problem::invalid(field, message)
        }
    }
}

/// serde_json appends " at line L column C" to data errors; the field path says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plantloop_core::Hold;

    #[test]
    fn names_the_field_at_fault() {
        let p = parse_body::<Hold>(
            br#"{"id":"H1","order":"O1","material":"M1","serials":{"first":1,"last":2}}"#,
        )
        .unwrap_err();
        assert_eq!((p.status, p.field.as_deref()), (422, Some("nc")));
        let p = parse_body::<Hold>(
            br#"{"id":"H 1","order":"O1","material":"M1","serials":{"first":1,"last":2},"nc":"N"}"#,
        )
        .unwrap_err();
        assert_eq!((p.status, p.field.as_deref()), (422, Some("id")));
        let p = parse_body::<Hold>(
            br#"{"id":"H1","order":"O1","material":"M1","serials":{"first":"x","last":2},"nc":"N"}"#,
        )
        .unwrap_err();
        assert_eq!((p.status, p.field.as_deref()), (422, Some("serials.first")));
        let p = parse_body::<Hold>(br#"{"id":"H1","#).unwrap_err();
        assert_eq!(p.status, 400);
        let p = parse_body::<Hold>(b"{} x").unwrap_err();
        assert_eq!(
            p.status, 422,
            "a missing field is found before trailing garbage"
        );
    }
}
