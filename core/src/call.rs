//! Calls the engine makes on the systems of record, and their replies.
//!
//! A [`Request`] is a business capability of one target system (post a quality hold, create a work
//! order, stop a station), not table CRUD. The mocks implement exactly these; the tokio driver maps
//! them onto HTTP routes. Every call carries an [`IdempotencyKey`] that stays the same through every
//! retry and every recovery, so a target that honours it posts once.

use crate::model::*;
use crate::time::{Duration, Instant};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// Identifies one call across its attempts, unique within one engine history (it is journaled state,
/// so it survives recovery).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(transparent)]
pub struct CallId(pub u64);

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

/// The key a target uses to recognise a repeated posting: `<workflow>/<correlation>/<step>`.
///
/// A shared string: every send of a call and its audit record carry the key.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(transparent)]
pub struct IdempotencyKey(pub Arc<str>);

impl IdempotencyKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the engine asks a target system to do.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// ERP: block the serials of an order (W1).
    PostHold(Hold),
    /// ERP: set a production order's status (W1 quality interruption, W3 resumed).
    SetOrderStatus {
        order: OrderId,
        status: OrderStatus,
        reason: String,
    },
    /// ERP: release a hold with the disposition's usage decision (W3).
    ReleaseHold {
        hold: HoldId,
        decision: DispositionDecision,
    },
    /// ERP: goods issue or receipt (W2 spare parts, W6 receipts).
    PostGoodsMovement(GoodsMovement),
    /// ERP: maintenance cost for a work order (W2).
    PostCost(CostPosting),
    /// ERP: production confirmation from MES (W6).
    ConfirmProduction(ProductionConfirmation),
    /// MES: download a released production order to its line.
    DispatchOrder(ProductionOrder),
    /// CMMS: create a maintenance work order (W1 emergency, W4 breakdown).
    CreateWorkOrder(MaintenanceWorkOrder),
    /// MES: stop or resume a station (W1, W3).
    ControlStation(LineControl),
    /// QMS: maintenance facts for an NC's deviation closure / CAPA (W2).
    RecordMaintenance {
        nc: NcId,
        work_order: WorkOrderId,
        root_cause: String,
    },
    /// MES or QMS: apply one master-data record version (W5).
    ApplyMasterData(MasterDataRecord),
    /// Any target that ignores idempotency keys: has a posting with this key as its external
    /// reference been made? (look before post)
    LookupPosting { key: IdempotencyKey },
}

impl Request {
    /// The system this request is for. `LookupPosting` goes wherever the posting it looks for went;
    /// the engine sets that target explicitly.
    pub fn target(&self) -> Option<System> {
        Some(match self {
            Request::PostHold(_)
            | Request::SetOrderStatus { .. }
            | Request::ReleaseHold { .. }
            | Request::PostGoodsMovement(_)
            | Request::PostCost(_)
            | Request::ConfirmProduction(_) => System::Erp,
            Request::CreateWorkOrder(_) => System::Cmms,
            Request::ControlStation(_) | Request::DispatchOrder(_) => System::Mes,
            Request::RecordMaintenance { .. } => System::Qms,
            Request::ApplyMasterData(_) | Request::LookupPosting { .. } => return None,
        })
    }

    /// A short name for traces and metrics (`post_hold`, `create_work_order`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Request::PostHold(_) => "post_hold",
            Request::SetOrderStatus { .. } => "set_order_status",
            Request::ReleaseHold { .. } => "release_hold",
            Request::PostGoodsMovement(_) => "post_goods_movement",
            Request::PostCost(_) => "post_cost",
            Request::ConfirmProduction(_) => "confirm_production",
            Request::CreateWorkOrder(_) => "create_work_order",
            Request::ControlStation(_) => "control_station",
            Request::DispatchOrder(_) => "dispatch_order",
            Request::RecordMaintenance { .. } => "record_maintenance",
            Request::ApplyMasterData(_) => "apply_master_data",
            Request::LookupPosting { .. } => "lookup_posting",
        }
    }

    /// True for requests that change the target's books (everything but a lookup).
    pub fn is_posting(&self) -> bool {
        !matches!(self, Request::LookupPosting { .. })
    }
}

/// One attempt of one call, as the driver must deliver it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    pub id: CallId,
    /// 1 for the first send of this call, then one more for every send: a retry, a lookup, the
    /// post after a lookup, a send after a 429 or a restart. A reply names the send it answers, so
    /// a late or duplicated reply is never taken for the reply to a later send.
    pub attempt: u32,
    pub target: System,
    pub class: LatencyClass,
    /// Same for every attempt of this call, and across recoveries.
    pub key: IdempotencyKey,
    pub request: Request,
    /// The driver must report a reply or a timeout; the engine gives up on this attempt at `deadline`.
    pub deadline: Instant,
    /// The source event that started this chain (CloudEvents `source` + `id`).
    pub origin: EventRef,
}

/// A reference to a source event: CloudEvents `source` and `id`.
///
/// Both live in one shared string, because every call, audit record, dead letter and dedupe entry
/// of the event carries its reference: a clone is one reference count, not a copy. Equality,
/// order and hash are those of the pair `(source, id)`; it reads and writes as
/// `{"source": …, "id": …}`.
#[derive(Clone)]
pub struct EventRef {
    /// `source` then `id`.
    text: Arc<str>,
    /// Where `id` starts in `text` (a `usize` costs nothing: the `Arc` pads the struct to 24 bytes).
    split: usize,
}

impl EventRef {
    pub fn new(source: impl AsRef<str>, id: impl AsRef<str>) -> EventRef {
        let (source, id) = (source.as_ref(), id.as_ref());
        let len = source.len() + id.len();
        // Joined on the stack when short (nearly always): an `Arc<str>` is made from a `&str` in
        // one allocation, where a `String` would be a second one, copied and freed.
        let mut short = [0u8; 128];
        let text: Arc<str> = match short.get_mut(..len) {
            Some(buf) => {
                buf[..source.len()].copy_from_slice(source.as_bytes());
                buf[source.len()..].copy_from_slice(id.as_bytes());
                std::str::from_utf8(buf)
                    .expect("two strings joined are UTF-8")
                    .into()
            }
            None => [source, id].concat().into(),
        };
        EventRef {
            text,
            split: source.len(),
        }
    }

    /// CloudEvents `source`.
    pub fn source(&self) -> &str {
        &self.text[..self.split]
    }

    /// CloudEvents `id`.
    pub fn id(&self) -> &str {
        &self.text[self.split..]
    }

    /// The text (source then id) and where the id starts in it.
    pub(crate) fn joined(&self) -> (&str, usize) {
        (&self.text, self.split)
    }
}

impl PartialEq for EventRef {
    fn eq(&self, other: &Self) -> bool {
        self.split == other.split && self.text == other.text
    }
}

impl Eq for EventRef {}

impl PartialOrd for EventRef {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for EventRef {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.source(), self.id()).cmp(&(other.source(), other.id()))
    }
}

impl std::hash::Hash for EventRef {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.source().hash(h);
        self.id().hash(h);
    }
}

impl fmt::Debug for EventRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventRef")
            .field("source", &self.source())
            .field("id", &self.id())
            .finish()
    }
}

/// The wire form of [`EventRef`].
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename = "EventRef")]
#[schemars(rename = "EventRef")]
pub(crate) struct EventRefWire<S> {
    pub source: S,
    pub id: S,
}

impl Serialize for EventRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        EventRefWire {
            source: self.source(),
            id: self.id(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for EventRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = EventRefWire::<std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(EventRef::new(w.source, w.id))
    }
}

impl JsonSchema for EventRef {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "EventRef".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        EventRefWire::<String>::json_schema(g)
    }
}

impl fmt::Display for EventRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.source(), self.id())
    }
}

/// How one attempt of a call ended.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// The target accepted (or had already accepted, for a repeated key) the posting; `receipt` is
    /// its document number.
    Done { receipt: String },
    /// Reply to `LookupPosting`: the posting exists (`Some(receipt)`) or not.
    Found { receipt: Option<String> },
    /// The target could not serve now (5xx, connection refused); it may or may not have posted.
    Unavailable { status: u16 },
    /// No reply in time; the posting may or may not have happened.
    TimedOut,
    /// 429: come back after `retry_after`.
    Throttled { retry_after: Duration },
    /// 409: the posting contradicts the target's state (release of what is not held, …).
    Conflict { detail: String },
    /// Other 4xx: the target refuses this request as it stands; retrying will not help.
    Rejected { status: u16, detail: String },
}

impl Outcome {
    /// True when retrying the same request may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Outcome::Unavailable { .. } | Outcome::TimedOut | Outcome::Throttled { .. }
        )
    }
    /// True when the posting may have happened although no success came back.
    pub fn is_ambiguous(&self) -> bool {
        matches!(self, Outcome::Unavailable { .. } | Outcome::TimedOut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, Hash};

    #[test]
    fn an_event_ref_compares_hashes_and_reads_as_its_source_and_id() {
        let a = EventRef::new("/plants/P1/mes", "e-1");
        assert_eq!((a.source(), a.id()), ("/plants/P1/mes", "e-1"));
        // Same text, other split: different references.
        let b = EventRef::new("/plants/P1/mese", "-1");
        assert_ne!(a, b);
        // Order is the pair's order, not the joined text's.
        let (x, y) = (EventRef::new("ab", "z"), EventRef::new("abc", "a"));
        assert!(x < y, "\"ab\" < \"abc\" although \"abz\" > \"abca\"");
        // Hash is the pair's hash (tags and map order stay what they were with two strings).
        let h = rustc_hash::FxBuildHasher;
        let pair = |s: &str, i: &str| {
            let mut st = std::hash::BuildHasher::build_hasher(&h);
            s.hash(&mut st);
            i.hash(&mut st);
            std::hash::Hasher::finish(&st)
        };
        assert_eq!(h.hash_one(&a), pair("/plants/P1/mes", "e-1"));
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, r#"{"source":"/plants/P1/mes","id":"e-1"}"#);
        assert_eq!(serde_json::from_str::<EventRef>(&json).unwrap(), a);
        let bytes = postcard::to_stdvec(&a).unwrap();
        assert_eq!(postcard::from_bytes::<EventRef>(&bytes).unwrap(), a);
        assert_eq!(a.to_string(), "/plants/P1/mes#e-1");
        // Longer than the stack buffer, and exactly as long.
        for (s, i) in [
            ("s".repeat(100), "i".repeat(100)),
            ("s".repeat(64), "i".repeat(64)),
        ] {
            let r = EventRef::new(&s, &i);
            assert_eq!((r.source(), r.id()), (s.as_str(), i.as_str()));
        }
    }
}
