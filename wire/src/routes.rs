//! The capability routes: how a core [`Request`] travels over HTTP and how the answer comes back as
//! an [`Outcome`].
//!
//! One table, [`ROUTES`], drives the servers' routers, the OpenAPI documents and the client side
//! ([`http_call_for`], [`outcome_from_response`]), so the three cannot drift apart. A route is a
//! business capability (post a quality hold, stop a station), never table CRUD.

use crate::problem::{Problem, parse_body};
use axum::http::{HeaderMap, HeaderName, Method, StatusCode};
use plantloop_core::call::{IdempotencyKey, Outcome, Request};
use plantloop_core::model::*;
use plantloop_core::time::Duration;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The request header that carries the [`IdempotencyKey`].
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// The longest idempotency key a mock accepts.
pub const IDEMPOTENCY_KEY_LEN_MAX: usize = 255;
/// The wait a 429 without a usable `Retry-After` implies.
pub const RETRY_AFTER_DEFAULT: Duration = Duration::from_secs(1);

/// One capability a system of record offers over HTTP; one per [`Request`] variant (two for
/// `ControlStation`: stop and resume are separate routes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Capability {
    PostHold,
    ReleaseHold,
    SetOrderStatus,
    PostGoodsMovement,
    PostCost,
    ConfirmProduction,
    DispatchOrder,
    StopStation,
    ResumeStation,
    CreateWorkOrder,
    RecordMaintenance,
    ApplyMasterData,
    LookupPosting,
}

/// A capability route: method and path template (`{id}` is the one path parameter a route may have).
#[derive(Clone, Copy, Debug)]
pub struct RouteSpec {
    pub capability: Capability,
    pub method: &'static str,
    pub path: &'static str,
    /// The systems that serve this route.
    pub systems: &'static [System],
    /// `operationId` in the OpenAPI document.
    pub operation_id: &'static str,
    pub summary: &'static str,
}

const ERP: &[System] = &[System::Erp];
const QMS: &[System] = &[System::Qms];
const CMMS: &[System] = &[System::Cmms];
const MES: &[System] = &[System::Mes];
const MASTER_DATA_CONSUMERS: &[System] = &[System::Qms, System::Mes];

/// Every capability route of every system.
pub const ROUTES: &[RouteSpec] = &[
    RouteSpec {
        capability: Capability::PostHold,
        method: "POST",
        path: "/quality-holds",
        systems: ERP,
        operation_id: "postQualityHold",
        summary: "Block the serials of a production order (quality hold on inventory).",
    },
    RouteSpec {
        capability: Capability::ReleaseHold,
        method: "POST",
        path: "/quality-holds/{id}/release",
        systems: ERP,
        operation_id: "releaseQualityHold",
        summary: "Release a hold with the disposition's usage decision; 409 if it is not held.",
    },
    RouteSpec {
        capability: Capability::SetOrderStatus,
        method: "POST",
        path: "/production-orders/{id}/status",
        systems: ERP,
        operation_id: "setProductionOrderStatus",
        summary: "Set a production order's status (quality interruption, resumed, ...).",
    },
    RouteSpec {
        capability: Capability::PostGoodsMovement,
        method: "POST",
        path: "/goods-movements",
        systems: ERP,
        operation_id: "postGoodsMovement",
        summary: "Post a goods issue or receipt; 409 for held inventory.",
    },
    RouteSpec {
        capability: Capability::PostCost,
        method: "POST",
        path: "/cost-postings",
        systems: ERP,
        operation_id: "postCost",
        summary: "Settle maintenance cost (parts or labour) for a work order.",
    },
    RouteSpec {
        capability: Capability::ConfirmProduction,
        method: "POST",
        path: "/production-confirmations",
        systems: ERP,
        operation_id: "confirmProduction",
        summary: "Post a production confirmation from MES; 409 for held inventory.",
    },
    RouteSpec {
        capability: Capability::DispatchOrder,
        method: "POST",
        path: "/orders",
        systems: MES,
        operation_id: "dispatchOrder",
        summary: "Download a released production order to its line.",
    },
    RouteSpec {
        capability: Capability::StopStation,
        method: "POST",
        path: "/stations/{id}/stop",
        systems: MES,
        operation_id: "stopStation",
        summary: "Stop a station.",
    },
    RouteSpec {
        capability: Capability::ResumeStation,
        method: "POST",
        path: "/stations/{id}/resume",
        systems: MES,
        operation_id: "resumeStation",
        summary: "Resume a stopped station.",
    },
    RouteSpec {
        capability: Capability::CreateWorkOrder,
        method: "POST",
        path: "/work-orders",
        systems: CMMS,
        operation_id: "createWorkOrder",
        summary: "Create a maintenance work order (emergency, breakdown, preventive).",
    },
    RouteSpec {
        capability: Capability::RecordMaintenance,
        method: "POST",
        path: "/nonconformances/{id}/maintenance",
        systems: QMS,
        operation_id: "recordMaintenance",
        summary: "Record maintenance facts for a nonconformance (deviation closure, CAPA).",
    },
    RouteSpec {
        capability: Capability::ApplyMasterData,
        method: "POST",
        path: "/master-data",
        systems: MASTER_DATA_CONSUMERS,
        operation_id: "applyMasterData",
        summary: "Apply one master-data record version; versions of a key only go up.",
    },
    RouteSpec {
        capability: Capability::LookupPosting,
        method: "GET",
        path: "/postings",
        systems: &[System::Erp, System::Qms, System::Cmms, System::Mes],
        operation_id: "lookupPosting",
        summary: "Look up a posting by its external reference (the idempotency key): look before post.",
    },
];

impl Capability {
    /// The capability that serves `request`.
    pub fn of(request: &Request) -> Capability {
        match request {
            Request::PostHold(_) => Capability::PostHold,
            Request::SetOrderStatus { .. } => Capability::SetOrderStatus,
            Request::ReleaseHold { .. } => Capability::ReleaseHold,
            Request::PostGoodsMovement(_) => Capability::PostGoodsMovement,
            Request::PostCost(_) => Capability::PostCost,
            Request::ConfirmProduction(_) => Capability::ConfirmProduction,
            Request::DispatchOrder(_) => Capability::DispatchOrder,
            Request::CreateWorkOrder(_) => Capability::CreateWorkOrder,
            Request::ControlStation(c) => match c.action {
                LineAction::Stop => Capability::StopStation,
                LineAction::Resume => Capability::ResumeStation,
            },
            Request::RecordMaintenance { .. } => Capability::RecordMaintenance,
            Request::ApplyMasterData(_) => Capability::ApplyMasterData,
            Request::LookupPosting { .. } => Capability::LookupPosting,
        }
    }

    /// This capability's route.
    pub fn spec(self) -> &'static RouteSpec {
        ROUTES
            .iter()
            .find(|r| r.capability == self)
            .expect("every capability has a route")
    }

    /// The JSON Schema of the request body, or `None` for a route without one.
    pub fn body_schema(
        self,
        generator: &mut schemars::SchemaGenerator,
    ) -> Option<schemars::Schema> {
        Some(match self {
            Capability::PostHold => generator.subschema_for::<Hold>(),
            Capability::ReleaseHold => generator.subschema_for::<ReleaseHoldBody>(),
            Capability::SetOrderStatus => generator.subschema_for::<OrderStatusBody>(),
            Capability::PostGoodsMovement => generator.subschema_for::<GoodsMovement>(),
            Capability::PostCost => generator.subschema_for::<CostPosting>(),
            Capability::ConfirmProduction => generator.subschema_for::<ProductionConfirmation>(),
            Capability::DispatchOrder => generator.subschema_for::<ProductionOrder>(),
            Capability::StopStation | Capability::ResumeStation => {
                generator.subschema_for::<StationControlBody>()
            }
            Capability::CreateWorkOrder => generator.subschema_for::<MaintenanceWorkOrder>(),
            Capability::RecordMaintenance => generator.subschema_for::<MaintenanceFactsBody>(),
            Capability::ApplyMasterData => generator.subschema_for::<MasterDataRecord>(),
            Capability::LookupPosting => return None,
        })
    }
}

/// Body of `POST /quality-holds/{id}/release`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReleaseHoldBody {
    /// The disposition's usage decision.
    pub decision: DispositionDecision,
}

/// Body of `POST /production-orders/{id}/status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderStatusBody {
    pub status: OrderStatus,
    pub reason: String,
}

/// Body of `POST /stations/{id}/stop` and `/resume`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StationControlBody {
    pub reason: String,
    /// The nonconformance the stop or resume serves, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nc: Option<NcId>,
}

/// Body of `POST /nonconformances/{id}/maintenance`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MaintenanceFactsBody {
    pub work_order: WorkOrderId,
    pub root_cause: String,
}

/// Query of `GET /postings`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LookupQuery {
    /// The external reference the posting was made with: its idempotency key.
    pub reference: String,
}

/// A successful posting (2xx).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PostingReceipt {
    /// The target's document number (`ERP-0000042`). A repeated Idempotency-Key gets the first
    /// posting's receipt again.
    pub receipt: String,
}

/// The answer of `GET /postings?reference=…`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LookupResult {
    pub reference: String,
    /// The receipt of the posting made with this reference, or null.
    pub receipt: Option<String>,
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The first value of `name` in a query string, percent- and `+`-decoded.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k)? == name)
            .then(|| percent_decode(v))
            .flatten()
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn with_id(template: &str, id: &str) -> String {
    template.replace("{id}", &encode_component(id))
}

fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("model types always serialize")
}

/// The HTTP form of a core request: method, path (with query) and JSON body (`Value::Null` for no
/// body). The path is relative to the target system's base URL.
pub fn http_call_for(request: &Request) -> (Method, String, Value) {
    let spec = Capability::of(request).spec();
    let method = Method::from_bytes(spec.method.as_bytes()).expect("route methods are valid");
    let (path, body) = match request {
        Request::PostHold(h) => (spec.path.to_owned(), to_value(h)),
        Request::ReleaseHold { hold, decision } => (
            with_id(spec.path, hold.as_str()),
            to_value(&ReleaseHoldBody {
                decision: *decision,
            }),
        ),
        Request::SetOrderStatus {
            order,
            status,
            reason,
        } => (
            with_id(spec.path, order.as_str()),
            to_value(&OrderStatusBody {
                status: *status,
                reason: reason.clone(),
            }),
        ),
        Request::PostGoodsMovement(m) => (spec.path.to_owned(), to_value(m)),
        Request::PostCost(c) => (spec.path.to_owned(), to_value(c)),
        Request::ConfirmProduction(c) => (spec.path.to_owned(), to_value(c)),
        Request::DispatchOrder(o) => (spec.path.to_owned(), to_value(o)),
        Request::ControlStation(c) => (
            with_id(spec.path, c.station.as_str()),
            to_value(&StationControlBody {
                reason: c.reason.clone(),
                nc: c.nc.clone(),
            }),
        ),
        Request::CreateWorkOrder(w) => (spec.path.to_owned(), to_value(w)),
        Request::RecordMaintenance {
            nc,
            work_order,
            root_cause,
        } => (
            with_id(spec.path, nc.as_str()),
            to_value(&MaintenanceFactsBody {
                work_order: work_order.clone(),
                root_cause: root_cause.clone(),
            }),
        ),
        Request::ApplyMasterData(r) => (spec.path.to_owned(), to_value(r)),
        Request::LookupPosting { key } => (
            format!("{}?reference={}", spec.path, encode_component(key.as_str())),
            Value::Null,
        ),
    };
    (method, path, body)
}

fn path_id<T>(
    id: Option<&str>,
    make: impl FnOnce(String) -> Result<T, ModelError>,
) -> Result<T, Problem> {
    let id = id.ok_or_else(|| Problem::not_found("the route needs an id"))?;
    make(id.to_owned())
        .map_err(|e| Problem::invalid(e.field, format!("path parameter: {}", e.reason)))
}

/// The server side of [`http_call_for`]: the request a capability route was called with. `id` is the
/// decoded path parameter, `reference` the lookup's query value, `body` the raw body. Errors are
/// problem+json: 400 malformed JSON, 422 naming the field.
pub fn request_from_http(
    capability: Capability,
    id: Option<&str>,
    reference: Option<&str>,
    body: &[u8],
) -> Result<Request, Problem> {
    Ok(match capability {
        Capability::PostHold => Request::PostHold(parse_body(body)?),
        Capability::ReleaseHold => {
            let hold = path_id(id, HoldId::new)?;
            let b: ReleaseHoldBody = parse_body(body)?;
            Request::ReleaseHold {
                hold,
                decision: b.decision,
            }
        }
        Capability::SetOrderStatus => {
            let order = path_id(id, OrderId::new)?;
            let b: OrderStatusBody = parse_body(body)?;
            Request::SetOrderStatus {
                order,
                status: b.status,
                reason: b.reason,
            }
        }
        Capability::PostGoodsMovement => Request::PostGoodsMovement(parse_body(body)?),
        Capability::PostCost => Request::PostCost(parse_body(body)?),
        Capability::ConfirmProduction => Request::ConfirmProduction(parse_body(body)?),
        Capability::DispatchOrder => Request::DispatchOrder(parse_body(body)?),
        Capability::StopStation | Capability::ResumeStation => {
            let station = path_id(id, StationId::new)?;
            let b: StationControlBody = parse_body(body)?;
            let action = if capability == Capability::StopStation {
                LineAction::Stop
            } else {
                LineAction::Resume
            };
            Request::ControlStation(LineControl {
                station,
                action,
                reason: b.reason,
                nc: b.nc,
            })
        }
        Capability::CreateWorkOrder => Request::CreateWorkOrder(parse_body(body)?),
        Capability::RecordMaintenance => {
            let nc = path_id(id, NcId::new)?;
            let b: MaintenanceFactsBody = parse_body(body)?;
            Request::RecordMaintenance {
                nc,
                work_order: b.work_order,
                root_cause: b.root_cause,
            }
        }
        Capability::ApplyMasterData => Request::ApplyMasterData(parse_body(body)?),
        Capability::LookupPosting => {
            let reference = reference.filter(|r| !r.is_empty()).ok_or_else(|| {
                Problem::invalid(
                    "reference",
                    "query parameter `reference` is required and must not be empty",
                )
            })?;
            Request::LookupPosting {
                key: IdempotencyKey(reference.into()),
            }
        }
    })
}

/// Reads the `Idempotency-Key` header: absent is `None`; empty, too long or not visible ASCII is 422.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, Problem> {
    // A ready header name: a `&str` would be parsed and checked on every request.
    static NAME: HeaderName = HeaderName::from_static(IDEMPOTENCY_KEY_HEADER);
    let Some(v) = headers.get(&NAME) else {
        return Ok(None);
    };
    let bad =
        |why: &str| Problem::invalid("Idempotency-Key", format!("header Idempotency-Key {why}"));
    let s = v.to_str().map_err(|_| bad("must be visible ASCII"))?;
    if s.is_empty() || s.len() > IDEMPOTENCY_KEY_LEN_MAX {
        return Err(bad(&format!(
            "must be 1 to {IDEMPOTENCY_KEY_LEN_MAX} bytes"
        )));
    }
    if !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad("must be visible ASCII without spaces"));
    }
    Ok(Some(IdempotencyKey(s.into())))
}

fn problem_detail(status: StatusCode, body: &[u8]) -> String {
    match serde_json::from_slice::<Problem>(body) {
        Ok(p) => match p.field {
            Some(f) => format!("{} (field {f})", p.detail),
            None => p.detail,
        },
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() {
                status.to_string()
            } else {
                text.chars().take(512).collect()
            }
        }
    }
}

/// `Retry-After` as delta-seconds; an HTTP date or garbage gives `None`.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs))
}

/// The [`Outcome`] of an answered attempt of `request`.
///
/// 2xx with a receipt is `Done` (`Found` for a lookup). A 2xx whose body is not a receipt (a system
/// that answers 200 with an error body) is `Unavailable`: the posting may or may not have happened,
/// so the caller retries with the same key. 409 is `Conflict`, 429 `Throttled` (with `Retry-After`),
/// 408 and 5xx `Unavailable`, any other status `Rejected` with the problem's detail.
pub fn outcome_from_response(
    request: &Request,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Outcome {
    if status.is_success() {
        if matches!(request, Request::LookupPosting { .. }) {
            if let Ok(r) = serde_json::from_slice::<LookupResult>(body) {
                return Outcome::Found { receipt: r.receipt };
            }
        } else if let Ok(r) = serde_json::from_slice::<PostingReceipt>(body) {
            return Outcome::Done { receipt: r.receipt };
        }
        return Outcome::Unavailable {
            status: status.as_u16(),
        };
    }
    match status {
        StatusCode::CONFLICT => Outcome::Conflict {
            detail: problem_detail(status, body),
        },
        StatusCode::TOO_MANY_REQUESTS => Outcome::Throttled {
            retry_after: retry_after(headers).unwrap_or(RETRY_AFTER_DEFAULT),
        },
        StatusCode::REQUEST_TIMEOUT => Outcome::Unavailable {
            status: status.as_u16(),
        },
        s if s.is_server_error() => Outcome::Unavailable { status: s.as_u16() },
        s => Outcome::Rejected {
            status: s.as_u16(),
            detail: problem_detail(s, body),
        },
    }
}

/// The W3C trace-context request header.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// Per-attempt settings of [`call_with`].
#[derive(Clone, Debug, Default)]
pub struct CallOptions<'a> {
    /// The attempt is abandoned (`TimedOut`) after this long; `None`: the client's own timeout.
    pub timeout: Option<std::time::Duration>,
    /// A W3C `traceparent` to send (`00-<trace id>-<span id>-<flags>`).
    pub traceparent: Option<&'a str>,
    /// An OAuth 2.0 access token, sent as `Authorization: Bearer`. With one, a 401 answer is
    /// `Unavailable { status: 401 }` (the token expired or was revoked: get another and try
    /// again), not a refusal of the request.
    pub bearer: Option<&'a str>,
}

/// Makes one attempt of `request` against the system at `base_url` (`http://127.0.0.1:8480`) with
/// `key`, and maps the answer: a timeout is `TimedOut`, a connection failure `Unavailable { status: 0 }`.
pub async fn call(
    client: &reqwest::Client,
    base_url: &str,
    key: &IdempotencyKey,
    request: &Request,
) -> Outcome {
    call_with(client, base_url, key, request, &CallOptions::default()).await
}

/// [`call`] with a per-attempt timeout and a `traceparent` header.
pub async fn call_with(
    client: &reqwest::Client,
    base_url: &str,
    key: &IdempotencyKey,
    request: &Request,
    options: &CallOptions<'_>,
) -> Outcome {
    let (method, path, body) = http_call_for(request);
    let mut rb = client.request(
        method,
        format!("{}{}", base_url.trim_end_matches('/'), path),
    );
    if request.is_posting() {
        rb = rb.header(IDEMPOTENCY_KEY_HEADER, key.as_str());
    }
    if let Some(tp) = options.traceparent {
        rb = rb.header(TRACEPARENT_HEADER, tp);
    }
    if let Some(token) = options.bearer {
        rb = rb.bearer_auth(token);
    }
    if let Some(t) = options.timeout {
        rb = rb.timeout(t);
    }
    if !body.is_null() {
        rb = rb.json(&body);
    }
    match rb.send().await {
        Ok(resp) if options.bearer.is_some() && resp.status() == StatusCode::UNAUTHORIZED => {
            Outcome::Unavailable { status: 401 }
        }
        Ok(resp) => {
            let status = resp.status();
            let headers = resp.headers().clone();
            match resp.bytes().await {
                Ok(bytes) => outcome_from_response(request, status, &headers, &bytes),
                Err(e) if e.is_timeout() => Outcome::TimedOut,
                Err(_) => Outcome::Unavailable {
                    status: status.as_u16(),
                },
            }
        }
        Err(e) if e.is_timeout() => Outcome::TimedOut,
        Err(_) => Outcome::Unavailable { status: 0 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plantloop_core::Money;

    fn id<T>(r: Result<T, ModelError>) -> T {
        r.unwrap()
    }

    /// One request per capability, with ids that need escaping in a path.
    pub(crate) fn sample_requests() -> Vec<Request> {
        let serials = SerialRange::new(100, 120).unwrap();
        vec![
            Request::PostHold(Hold {
                id: id(HoldId::new("H/NC-7")),
                order: id(OrderId::new("PO-1")),
                material: id(MaterialId::new("M-1")),
                serials,
                nc: id(NcId::new("NC-7")),
            }),
            Request::ReleaseHold {
                hold: id(HoldId::new("H/NC-7")),
                decision: DispositionDecision::Release,
            },
            Request::SetOrderStatus {
                order: id(OrderId::new("PO:1")),
                status: OrderStatus::QualityInterruption,
                reason: "NC-7".into(),
            },
            Request::PostGoodsMovement(GoodsMovement {
                kind: MovementKind::GoodsIssue,
                material: id(MaterialId::new("TORQUE-HEAD")),
                quantity: 2,
                order: None,
                work_order: Some(id(WorkOrderId::new("WO-1"))),
                serials: None,
            }),
            Request::PostCost(CostPosting {
                work_order: id(WorkOrderId::new("WO-1")),
                kind: CostKind::Labour,
                amount: Money::from_cents(5_667),
            }),
            Request::ConfirmProduction(ProductionConfirmation {
                order: id(OrderId::new("PO-1")),
                station: id(StationId::new("P1-L1-S3")),
                material: id(MaterialId::new("M-1")),
                serials,
                good: 20,
                scrap: 1,
            }),
            Request::DispatchOrder(ProductionOrder {
                id: id(OrderId::new("PO-1")),
                material: id(MaterialId::new("M-1")),
                line: id(LineId::new("P1-L1")),
                plant: id(PlantId::new("P1")),
                serials,
            }),
            Request::ControlStation(LineControl {
                station: id(StationId::new("P1-L1-S3")),
                action: LineAction::Stop,
                reason: "NC-7".into(),
                nc: Some(id(NcId::new("NC-7"))),
            }),
            Request::ControlStation(LineControl {
                station: id(StationId::new("P1-L1-S3")),
                action: LineAction::Resume,
                reason: "released".into(),
                nc: None,
            }),
            Request::CreateWorkOrder(MaintenanceWorkOrder {
                id: id(WorkOrderId::new("WO-1")),
                asset: id(AssetId::new("A-3")),
                station: id(StationId::new("P1-L1-S3")),
                kind: WorkOrderKind::Emergency,
                severity: Severity::Major,
                fault: "torque failures".into(),
                nc: Some(id(NcId::new("NC-7"))),
            }),
            Request::RecordMaintenance {
                nc: id(NcId::new("NC/7")),
                work_order: id(WorkOrderId::new("WO-1")),
                root_cause: "worn head".into(),
            },
            Request::ApplyMasterData(
                MasterDataRecord::new(
                    id(RecordKey::new("M-1")),
                    2,
                    MasterDataPayload::Material(Material {
                        id: id(MaterialId::new("M-1")),
                        description: "pump".into(),
                        unit: "EA".into(),
                    }),
                )
                .unwrap(),
            ),
            Request::LookupPosting {
                key: IdempotencyKey("w1/NC-7/hold?x=1&y".into()),
            },
        ]
    }

    /// Splits a path produced by `http_call_for` the way the router does.
    fn route(path: &str) -> (Capability, Option<String>, Option<String>) {
        let (p, query) = path
            .split_once('?')
            .map_or((path, None), |(p, q)| (p, Some(q)));
        let segs: Vec<&str> = p.split('/').collect();
        for spec in ROUTES {
            let t: Vec<&str> = spec.path.split('/').collect();
            if t.len() != segs.len() {
                continue;
            }
            let mut id = None;
            if t.iter().zip(&segs).all(|(t, s)| {
                if *t == "{id}" {
                    id = percent_decode(s);
                    true
                } else {
                    t == s
                }
            }) {
                let reference = query.and_then(|q| query_param(q, "reference"));
                return (spec.capability, id, reference);
            }
        }
        panic!("no route for {path}");
    }

    #[test]
    fn every_request_round_trips_through_http() {
        let samples = sample_requests();
        let mut seen: Vec<Capability> = samples.iter().map(Capability::of).collect();
        seen.dedup();
        assert_eq!(seen.len(), ROUTES.len(), "one sample per route");
        for r in samples {
            let (method, path, body) = http_call_for(&r);
            let (cap, id, reference) = route(&path);
            assert_eq!(method.as_str(), cap.spec().method);
            let bytes = if body.is_null() {
                vec![]
            } else {
                serde_json::to_vec(&body).unwrap()
            };
            let back = request_from_http(cap, id.as_deref(), reference.as_deref(), &bytes).unwrap();
            assert_eq!(back, r, "{path}");
            if let Some(target) = r.target() {
                assert!(
                    cap.spec().systems.contains(&target),
                    "{path} is not served by {target}"
                );
            }
        }
    }

    #[test]
    fn answers_map_to_outcomes() {
        let post = &sample_requests()[0];
        let lookup = Request::LookupPosting {
            key: IdempotencyKey("k".into()),
        };
        let h = HeaderMap::new();
        let ok = |s: u16, b: &str, r: &Request| {
            outcome_from_response(r, StatusCode::from_u16(s).unwrap(), &h, b.as_bytes())
        };
        assert_eq!(
            ok(201, r#"{"receipt":"ERP-1"}"#, post),
            Outcome::Done {
                receipt: "ERP-1".into()
            }
        );
        assert_eq!(
            ok(200, r#"{"error":"posting failed"}"#, post),
            Outcome::Unavailable { status: 200 }
        );
        assert_eq!(
            ok(200, r#"{"reference":"k","receipt":null}"#, &lookup),
            Outcome::Found { receipt: None }
        );
        assert_eq!(ok(503, "", post), Outcome::Unavailable { status: 503 });
        let conflict = r#"{"type":"https://plantloop.dev/problems/conflict","title":"t","status":409,"detail":"not held"}"#;
        assert_eq!(
            ok(409, conflict, post),
            Outcome::Conflict {
                detail: "not held".into()
            }
        );
        assert_eq!(
            ok(429, "", post),
            Outcome::Throttled {
                retry_after: RETRY_AFTER_DEFAULT
            }
        );
        let mut h2 = HeaderMap::new();
        h2.insert("retry-after", "7".parse().unwrap());
        assert_eq!(
            outcome_from_response(post, StatusCode::TOO_MANY_REQUESTS, &h2, b""),
            Outcome::Throttled {
                retry_after: Duration::from_secs(7)
            }
        );
        let invalid = r#"{"type":"x","title":"t","status":422,"detail":"bad","field":"nc"}"#;
        assert_eq!(
            ok(422, invalid, post),
            Outcome::Rejected {
                status: 422,
                detail: "bad (field nc)".into()
            }
        );
    }
}
