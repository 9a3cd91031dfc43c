//! `POST /events` bodies: CloudEvents 1.0 in structured, batched and binary mode, parsed into
//! events with core's `parse_event`, or refused as problem+json naming the attribute at fault.
//!
//! - **structured** — `content-type: application/cloudevents+json`, the body is one event;
//! - **batched** — `content-type: application/cloudevents-batch+json`, the body is a JSON array
//!   of events; each is judged on its own and a bad one is reported by its index;
//! - **binary** — the attributes are `ce-*` headers (values percent-decoded, as the HTTP binding
//!   says) and the body is the event's `data`, of content type `application/json`.
//!
//! Nothing here panics on input: every failure is a [`Problem`].

use axum::http::{HeaderMap, StatusCode, header};
use plantloop_core::event::{EVENT_BYTES_MAX, Event, IngressError, parse_event, parse_event_value};
use plantloop_wire::Problem;
use serde_json::{Map, Value};

/// Structured mode's media type.
pub const CLOUDEVENTS_JSON: &str = "application/cloudevents+json";
/// Batched mode's media type.
pub const CLOUDEVENTS_BATCH_JSON: &str = "application/cloudevents-batch+json";
/// The largest body `POST /events` reads (a batch); one event is limited to `EVENT_BYTES_MAX`.
pub const BATCH_BYTES_MAX: usize = 16 * 1024 * 1024;
/// The most events one batch may carry.
pub const BATCH_EVENTS_MAX: usize = 10_000;

/// How a request carries its events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Structured,
    Batch,
    Binary,
}

/// The media type's essence, lower-cased (`Application/JSON; charset=utf-8` → `application/json`).
fn essence(headers: &HeaderMap) -> Option<String> {
    let ct = headers.get(header::CONTENT_TYPE)?;
    let s = String::from_utf8_lossy(ct.as_bytes());
    Some(
        s.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
    )
}

/// The mode a request uses: by its content type, or binary when it has `ce-specversion`.
pub fn mode_of(headers: &HeaderMap) -> Result<Mode, Problem> {
    match essence(headers).as_deref() {
        Some(CLOUDEVENTS_JSON) => Ok(Mode::Structured),
        Some(CLOUDEVENTS_BATCH_JSON) => Ok(Mode::Batch),
        _ if headers.contains_key("ce-specversion") => Ok(Mode::Binary),
        other => Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            format!(
                "content-type {:?} is none of {CLOUDEVENTS_JSON} (structured), \
                 {CLOUDEVENTS_BATCH_JSON} (batched), or a binary-mode event with ce-* headers",
                other.unwrap_or("(none)")
            ),
        )
        .with_field("content-type")),
    }
}

/// The problem for an event ingress refused.
pub fn problem_of(e: &IngressError) -> Problem {
    let p = match e {
        IngressError::TooLarge(_) => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "event-too-large",
            "Event too large",
            e.to_string(),
        ),
        IngressError::MalformedJson { .. } => Problem::malformed(e.to_string()),
        _ => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-event",
            "The event breaks the CloudEvents envelope or its schema",
            e.to_string(),
        ),
    };
    p.with_field(e.field())
}

/// One structured-mode event.
pub fn structured(body: &[u8]) -> Result<Event, Problem> {
    parse_event(body).map_err(|e| problem_of(&e))
}

/// A batch: the whole body refused (not an array, too many events), or one result per element.
pub fn batch(body: &[u8]) -> Result<Vec<Result<Event, Problem>>, Problem> {
    let items: Vec<Value> = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => items,
        Ok(_) => {
            return Err(Problem::invalid(
                "",
                "a batch is a JSON array of CloudEvents",
            ));
        }
        Err(e) => return Err(Problem::malformed(e.to_string())),
    };
    if items.len() > BATCH_EVENTS_MAX {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch-too-large",
            "Batch too large",
            format!(
                "the batch holds {} events, more than the {BATCH_EVENTS_MAX} accepted",
                items.len()
            ),
        ));
    }
    Ok(items
        .into_iter()
        .map(|v| parse_event_value(v).map_err(|e| problem_of(&e)))
        .collect())
}

/// One binary-mode event: attributes from `ce-*` headers, `data` from the body.
pub fn binary(headers: &HeaderMap, body: &[u8]) -> Result<Event, Problem> {
    if body.len() > EVENT_BYTES_MAX {
        return Err(problem_of(&IngressError::TooLarge(body.len())));
    }
    let mut m = Map::new();
    for (name, value) in headers {
        let Some(attr) = name.as_str().strip_prefix("ce-") else {
            continue;
        };
        let bad = |why: &str| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "bad-header",
                "Unreadable CloudEvents header",
                format!("header ce-{attr} {why}"),
            )
            .with_field(attr)
        };
        if m.contains_key(attr) {
            return Err(bad("is given more than once"));
        }
        let text = value.to_str().map_err(|_| bad("is not visible ASCII"))?;
        let decoded = percent_decode(text).ok_or_else(|| bad("has a bad percent-encoding"))?;
        m.insert(attr.to_owned(), Value::String(decoded));
    }
    match essence(headers) {
        None => {}
        Some(ct) if ct == "application/json" || ct.ends_with("+json") => {
            m.insert("datacontenttype".into(), "application/json".into());
        }
        Some(ct) => {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                format!("a binary-mode event's data must be application/json, not {ct:?}"),
            )
            .with_field("content-type"));
        }
    }
    let data: Value = serde_json::from_slice(body).map_err(|e| {
        Problem::malformed(format!("the body (the event's data): {e}")).with_field("data")
    })?;
    m.insert("data".into(), data);
    parse_event_value(Value::Object(m)).map_err(|e| problem_of(&e))
}

/// `%XX`-decodes a header value; `None` for a bad escape or a result that is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_owned());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const ORDER: &str = r#"{"id":"PO-1","material":"M-1","line":"P1-L1","plant":"P1","serials":{"first":1,"last":10}}"#;

    fn event(id: &str) -> String {
        format!(
            r#"{{"specversion":"1.0","id":"{id}","source":"/erp","type":"com.plantloop.erp.order.released.v1","data":{ORDER}}}"#
        )
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_mode_follows_the_content_type() {
        let h = headers(&[(
            "content-type",
            "Application/CloudEvents+JSON; charset=utf-8",
        )]);
        assert_eq!(mode_of(&h), Ok(Mode::Structured));
        let h = headers(&[("content-type", CLOUDEVENTS_BATCH_JSON)]);
        assert_eq!(mode_of(&h), Ok(Mode::Batch));
        let h = headers(&[
            ("content-type", "application/json"),
            ("ce-specversion", "1.0"),
        ]);
        assert_eq!(mode_of(&h), Ok(Mode::Binary));
        let p = mode_of(&headers(&[("content-type", "text/plain")])).unwrap_err();
        assert_eq!((p.status, p.field.as_deref()), (415, Some("content-type")));
        assert_eq!(mode_of(&HeaderMap::new()).unwrap_err().status, 415);
    }

    #[test]
    fn structured_refusals_name_the_attribute() {
        assert_eq!(structured(event("1").as_bytes()).unwrap().id, "1");
        let p = structured(b"{").unwrap_err();
        assert_eq!(p.status, 400);
        let p = structured(event("1").replace("\"source\":\"/erp\",", "").as_bytes()).unwrap_err();
        assert_eq!((p.status, p.field.as_deref()), (422, Some("source")));
        let p = structured(event("1").replace("\"PO-1\"", "7").as_bytes()).unwrap_err();
        assert_eq!((p.status, p.field.as_deref()), (422, Some("data.id")));
        let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(EVENT_BYTES_MAX));
        assert_eq!(structured(big.as_bytes()).unwrap_err().status, 413);
    }

    #[test]
    fn a_batch_judges_each_event_on_its_own() {
        let body = format!("[{},{{\"id\":3}},{}]", event("1"), event("2"));
        let r = batch(body.as_bytes()).unwrap();
        assert!(r[0].is_ok() && r[2].is_ok());
        let p = r[1].as_ref().unwrap_err();
        assert_eq!((p.status, p.field.as_deref()), (422, Some("specversion")));
        assert_eq!(batch(b"{}").unwrap_err().status, 422);
        assert_eq!(batch(b"[").unwrap_err().status, 400);
    }

    #[test]
    fn binary_mode_reads_ce_headers() {
        let h = headers(&[
            ("content-type", "application/json"),
            ("ce-specversion", "1.0"),
            ("ce-id", "9"),
            ("ce-source", "/erp"),
            ("ce-type", "com.plantloop.erp.order.released.v1"),
            ("ce-subject", "order%20PO-1"),
        ]);
        let e = binary(&h, ORDER.as_bytes()).unwrap();
        assert_eq!(
            (e.id.as_str(), e.subject.as_deref()),
            ("9", Some("order PO-1"))
        );
        let mut no_type = h.clone();
        no_type.remove("ce-type");
        let p = binary(&no_type, ORDER.as_bytes()).unwrap_err();
        assert_eq!((p.status, p.field.as_deref()), (422, Some("type")));
        let p = binary(&h, b"not json").unwrap_err();
        assert_eq!((p.status, p.field.as_deref()), (400, Some("data")));
        let mut xml = h.clone();
        xml.insert("content-type", HeaderValue::from_static("application/xml"));
        assert_eq!(binary(&xml, ORDER.as_bytes()).unwrap_err().status, 415);
        let mut bad = h.clone();
        bad.insert("ce-id", HeaderValue::from_static("%zz"));
        let p = binary(&bad, ORDER.as_bytes()).unwrap_err();
        assert_eq!((p.status, p.field.as_deref()), (400, Some("id")));
    }
}
