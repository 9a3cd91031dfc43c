//! What a mock answers to one integration call: an HTTP-like status with a receipt, a lookup
//! result or a problem, and its mapping onto the engine's [`Outcome`].

use plantloop_core::System;
use plantloop_core::call::Outcome;
use plantloop_core::time::Duration;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;

/// 200: a lookup, a no-op, or a repeated key whose first reply was 200.
pub const OK: u16 = 200;
/// 201: a new document was posted.
pub const CREATED: u16 = 201;
/// 404: this system has no such capability (the request is for another system).
pub const NOT_FOUND: u16 = 404;
/// 409: the request contradicts the system's state (release of what is not held, …).
pub const CONFLICT: u16 = 409;
/// 422: the request is well formed but its content is invalid; `field` names the culprit.
pub const UNPROCESSABLE: u16 = 422;
/// 429: rate limited; come back after `retry_after`.
pub const TOO_MANY_REQUESTS: u16 = 429;
/// 503: the system cannot serve now (only fault injection produces it).
pub const SERVICE_UNAVAILABLE: u16 = 503;

/// A system's document number, e.g. `ERP-0000042`. `Copy`, so replies and ledger entries carry it
/// without allocating; it serializes as its string form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Receipt {
    /// The system that issued it.
    pub system: System,
    /// The ledger sequence number of the posting that issued it (≥ 1).
    pub number: u64,
}

impl Receipt {
    /// Parses the string form (`ERP-0000042`).
    pub fn parse(text: &str) -> Option<Receipt> {
        let (sys, num) = text.split_once('-')?;
        let system = System::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(sys))?;
        if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Receipt {
            system,
            number: num.parse().ok()?,
        })
    }
}

impl Receipt {
    /// The document-number prefix of the issuing system (`ERP`).
    pub fn prefix(self) -> &'static str {
        match self.system {
            System::Erp => "ERP",
            System::Qms => "QMS",
            System::Cmms => "CMMS",
            System::Mes => "MES",
        }
    }

    /// Appends the string form (`ERP-0000042`, as [`Display`](fmt::Display) writes it) to `out`,
    /// without the formatting machinery.
    pub fn push_to(self, out: &mut String) {
        let mut buf = itoa::Buffer::new();
        let digits = buf.format(self.number);
        out.push_str(self.prefix());
        out.push('-');
        for _ in digits.len()..7 {
            out.push('0');
        }
        out.push_str(digits);
    }
}

impl fmt::Display for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{:07}", self.prefix(), self.number)
    }
}

impl Serialize for Receipt {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Receipt {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Cow::<'de, str>::deserialize(d)?;
        Receipt::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("{s:?} is not a receipt")))
    }
}

/// The kinds of problems a mock reports; each has a fixed title and problem+json `type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProblemKind {
    /// 404: the request is for another system.
    NoSuchCapability,
    /// 409: the request contradicts the state (unknown or released hold, invalid transition, …).
    Conflict,
    /// 409: a master-data version older than the one applied.
    StaleVersion,
    /// 422: a field's value is invalid.
    InvalidField,
    /// 422: an idempotency key was reused with a different request.
    KeyReuse,
    /// 429: rate limited.
    Throttled,
    /// 5xx, or a 200 carrying an error body: an injected server fault.
    ServerError,
}

impl ProblemKind {
    /// The problem+json `title`.
    pub fn title(self) -> &'static str {
        match self {
            ProblemKind::NoSuchCapability => "No such capability",
            ProblemKind::Conflict => "Conflict with the current state",
            ProblemKind::StaleVersion => "Stale master-data version",
            ProblemKind::InvalidField => "Invalid field",
            ProblemKind::KeyReuse => "Idempotency key reused for a different request",
            ProblemKind::Throttled => "Too many requests",
            ProblemKind::ServerError => "Server error",
        }
    }

    /// The problem+json `type` URI.
    pub fn type_uri(self) -> &'static str {
        match self {
            ProblemKind::NoSuchCapability => "https://plantloop.dev/problems/no-such-capability",
            ProblemKind::Conflict => "https://plantloop.dev/problems/conflict",
            ProblemKind::StaleVersion => "https://plantloop.dev/problems/stale-version",
            ProblemKind::InvalidField => "https://plantloop.dev/problems/invalid-field",
            ProblemKind::KeyReuse => "https://plantloop.dev/problems/key-reuse",
            ProblemKind::Throttled => "https://plantloop.dev/problems/throttled",
            ProblemKind::ServerError => "https://plantloop.dev/problems/server-error",
        }
    }
}

/// An RFC 9457 problem: what went wrong, and which field when one is at fault.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Problem {
    pub kind: ProblemKind,
    /// Human-readable, names the ids involved.
    pub detail: String,
    /// The JSON field at fault (`serials`, `order`, `Idempotency-Key`), if one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<Cow<'static, str>>,
}

impl Problem {
    /// The problem+json `title` of this problem's kind.
    pub fn title(&self) -> &'static str {
        self.kind.title()
    }

    /// The RFC 9457 problem+json body for this problem sent with `status`: `type`, `title`,
    /// `status`, `detail`, and the extension `field` when a field is at fault.
    pub fn to_problem_json(&self, status: u16) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("type".into(), self.kind.type_uri().into());
        m.insert("title".into(), self.kind.title().into());
        m.insert("status".into(), status.into());
        m.insert("detail".into(), self.detail.clone().into());
        if let Some(f) = &self.field {
            m.insert("field".into(), f.as_ref().into());
        }
        serde_json::Value::Object(m)
    }
}

/// The body of a reply.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyBody {
    /// The posting's document number (for a no-op, the one of the posting that made the state).
    Receipt(Receipt),
    /// Answer to `LookupPosting`: the receipt of the first accepted request with that key.
    Lookup(Option<Receipt>),
    /// What went wrong.
    Problem(Problem),
}

/// A mock's answer to one call: an HTTP-like status and a body.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Reply {
    pub status: u16,
    pub body: ReplyBody,
    /// For 429: when to come back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<Duration>,
}

impl Reply {
    /// 201 with the receipt of a new posting.
    pub fn created(receipt: Receipt) -> Reply {
        Reply {
            status: CREATED,
            body: ReplyBody::Receipt(receipt),
            retry_after: None,
        }
    }
    /// 200 with the receipt of an existing posting (a no-op).
    pub fn unchanged(receipt: Receipt) -> Reply {
        Reply {
            status: OK,
            body: ReplyBody::Receipt(receipt),
            retry_after: None,
        }
    }
    /// 200 answering a lookup.
    pub fn lookup(receipt: Option<Receipt>) -> Reply {
        Reply {
            status: OK,
            body: ReplyBody::Lookup(receipt),
            retry_after: None,
        }
    }
    /// A problem reply with the kind's usual status.
    pub fn problem(
        kind: ProblemKind,
        detail: impl Into<String>,
        field: Option<&'static str>,
    ) -> Reply {
        let status = match kind {
            ProblemKind::NoSuchCapability => NOT_FOUND,
            ProblemKind::Conflict | ProblemKind::StaleVersion => CONFLICT,
            ProblemKind::InvalidField | ProblemKind::KeyReuse => UNPROCESSABLE,
            ProblemKind::Throttled => TOO_MANY_REQUESTS,
            ProblemKind::ServerError => SERVICE_UNAVAILABLE,
        };
        Reply {
            status,
            body: ReplyBody::Problem(Problem {
                kind,
                detail: detail.into(),
                field: field.map(Cow::Borrowed),
            }),
            retry_after: None,
        }
    }
    /// 409 Conflict.
    pub fn conflict(detail: impl Into<String>) -> Reply {
        Reply::problem(ProblemKind::Conflict, detail, None)
    }
    /// 422 naming the field at fault.
    pub fn invalid(field: &'static str, detail: impl Into<String>) -> Reply {
        Reply::problem(ProblemKind::InvalidField, detail, Some(field))
    }
    /// 429 with Retry-After.
    pub fn throttled(retry_after: Duration) -> Reply {
        let mut r = Reply::problem(ProblemKind::Throttled, "rate limit exceeded", None);
        r.retry_after = Some(retry_after);
        r
    }
    /// A 5xx server error (fault injection).
    pub fn server_error(status: u16) -> Reply {
        let mut r = Reply::problem(ProblemKind::ServerError, "injected server error", None);
        r.status = status;
        r
    }
    /// 200 with an error body (fault injection): the status claims success, the body does not.
    pub fn error_body() -> Reply {
        let mut r = Reply::problem(
            ProblemKind::ServerError,
            "internal error (reported with status 200)",
            None,
        );
        r.status = OK;
        r
    }

    /// True for 2xx statuses.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The receipt, if the body carries one (a posting or a found lookup).
    pub fn receipt(&self) -> Option<Receipt> {
        match &self.body {
            ReplyBody::Receipt(r) => Some(*r),
            ReplyBody::Lookup(r) => *r,
            ReplyBody::Problem(_) => None,
        }
    }

    /// The problem, if the body carries one.
    pub fn problem_body(&self) -> Option<&Problem> {
        match &self.body {
            ReplyBody::Problem(p) => Some(p),
            _ => None,
        }
    }

    /// How the engine sees this reply.
    ///
    /// | reply | outcome |
    /// |---|---|
    /// | 2xx + receipt | `Done` |
    /// | 2xx + lookup | `Found` |
    /// | 2xx + problem (error body) | `Unavailable { status }`: the client cannot trust it |
    /// | 409 | `Conflict` |
    /// | 429 | `Throttled` (Retry-After, else 1 s) |
    /// | other 4xx | `Rejected` |
    /// | 5xx and anything else | `Unavailable` |
    pub fn outcome(&self) -> Outcome {
        let detail = || {
            self.problem_body()
                .map(|p| p.detail.clone())
                .unwrap_or_default()
        };
        match (self.status, &self.body) {
            (200..=299, ReplyBody::Receipt(r)) => Outcome::Done {
                receipt: r.to_string(),
            },
            (200..=299, ReplyBody::Lookup(r)) => Outcome::Found {
                receipt: r.map(|r| r.to_string()),
            },
            (CONFLICT, _) => Outcome::Conflict { detail: detail() },
            (TOO_MANY_REQUESTS, _) => Outcome::Throttled {
                retry_after: self.retry_after.unwrap_or(Duration::from_secs(1)),
            },
            (400..=499, _) => Outcome::Rejected {
                status: self.status,
                detail: detail(),
            },
            (status, _) => Outcome::Unavailable { status },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_round_trip() {
        let r = Receipt {
            system: System::Cmms,
            number: 42,
        };
        assert_eq!(r.to_string(), "CMMS-0000042");
        assert_eq!(Receipt::parse("CMMS-0000042"), Some(r));
        assert_eq!(serde_json::to_string(&r).unwrap(), "\"CMMS-0000042\"");
        assert_eq!(
            serde_json::from_str::<Receipt>("\"CMMS-0000042\"").unwrap(),
            r
        );
        assert_eq!(Receipt::parse("XYZ-1"), None);
        assert_eq!(Receipt::parse("ERP-"), None);
    }

    #[test]
    fn pushed_receipts_are_displayed_receipts() {
        for system in System::ALL {
            for number in [1, 42, 9_999_999, 10_000_000, u64::MAX] {
                let r = Receipt { system, number };
                let mut s = String::from("x");
                r.push_to(&mut s);
                assert_eq!(s, format!("x{r}"));
            }
        }
    }

    #[test]
    fn problems_render_as_rfc9457() {
        let r = Reply::invalid("serials", "serials 5..=9 are not within order PO-1");
        let json = r.problem_body().unwrap().to_problem_json(r.status);
        assert_eq!(
            json,
            serde_json::json!({
                "type": "https://plantloop.dev/problems/invalid-field",
                "title": "Invalid field",
                "status": 422,
                "detail": "serials 5..=9 are not within order PO-1",
                "field": "serials",
            })
        );
    }

    #[test]
    fn outcomes_map_statuses() {
        let r = Receipt {
            system: System::Erp,
            number: 1,
        };
        assert_eq!(
            Reply::created(r).outcome(),
            Outcome::Done {
                receipt: "ERP-0000001".into()
            }
        );
        assert_eq!(
            Reply::lookup(None).outcome(),
            Outcome::Found { receipt: None }
        );
        assert!(matches!(
            Reply::conflict("x").outcome(),
            Outcome::Conflict { .. }
        ));
        assert!(matches!(
            Reply::invalid("f", "x").outcome(),
            Outcome::Rejected { status: 422, .. }
        ));
        assert_eq!(
            Reply::throttled(Duration::from_millis(200)).outcome(),
            Outcome::Throttled {
                retry_after: Duration::from_millis(200)
            }
        );
        assert_eq!(
            Reply::server_error(503).outcome(),
            Outcome::Unavailable { status: 503 }
        );
        assert_eq!(
            Reply::error_body().outcome(),
            Outcome::Unavailable { status: 200 }
        );
    }
}
