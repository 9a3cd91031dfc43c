//! Mock ERP: materials, production orders, inventory by serial range, quality holds, goods
//! movements and cost postings.
//!
//! Rules (409 unless noted):
//! - `PostHold`: the order must exist; the serials must lie within the order (422 `serials`) and
//!   the material be the order's (422 `material`). Every accepted hold request is a new hold
//!   document, even for a hold id already posted (the checker sees the duplicate); but a hold id
//!   that is active with other content (serials, order, NC) is a 409, so that one hold id always
//!   blocks exactly what its postings say. A released hold id may be posted again and blocks again.
//! - `ReleaseHold`: the hold must exist and be active.
//! - `SetOrderStatus`: only the transitions of [`transition_allowed`]; setting the current status
//!   is a no-op (Modern, Saas) or posts again (Legacy).
//! - `ConfirmProduction`: the order must exist and not be completed, the material be the order's
//!   (422), the serials lie within the order (422) and number `good + scrap` (422 `good`), and
//!   none may be under an active hold. Confirmation includes the goods receipt of the good units
//!   and moves a released order to in progress.
//! - `PostGoodsMovement`: quantity ≥ 1 (422); a receipt's serials must not be under an active
//!   hold and must number `quantity` (422); a referenced order must exist.
//! - `PostCost`: amount ≥ 0 (422). Posted exactly as sent, in cents.
//!
//! Operator API: [`Erp::release_order`] (emits `OrderReleased`), [`Erp::publish_material`] and
//! [`Erp::publish_materials`] (emit `MasterDataPublished`).

use crate::common::{HeldRecord, MasterData, Outbox, not_mine};
use crate::ledger::{Ledger, Origin, Posting};
use crate::personality::{Desk, Personality};
use crate::reply::{Receipt, Reply};
use crate::{OperatorError, system_of_record};
use plantloop_core::call::{IdempotencyKey, Request};
use plantloop_core::event::EventData;
use plantloop_core::time::Instant;
use plantloop_core::*;
use rustc_hash::FxHashMap;

/// The CloudEvents source of ERP events.
pub const SOURCE: &str = "/erp";

/// A production order as ERP holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderRecord {
    pub order: ProductionOrder,
    pub status: OrderStatus,
    /// The posting that set the current status (the release, for a released order).
    pub status_receipt: Receipt,
    /// Good units confirmed or received.
    pub good: u64,
    /// Scrapped units confirmed.
    pub scrap: u64,
    /// Serial ranges received into stock, in posting order.
    pub received: Vec<SerialRange>,
}

/// Whether a hold still blocks its serials.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HoldState {
    Active,
    Released(DispositionDecision),
}

/// A quality hold as ERP holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HoldRecord {
    pub hold: Hold,
    pub state: HoldState,
    /// Every hold document posted for this hold id (more than one is a duplicate posting).
    pub posted: Vec<Receipt>,
    /// The release posting, once released.
    pub released: Option<Receipt>,
}

/// True when ERP allows a production order to go from `from` to `to`:
/// released → in progress | quality interruption | completed; in progress → quality interruption |
/// completed; quality interruption → resumed; resumed → in progress | quality interruption |
/// completed; completed → nothing.
pub fn transition_allowed(from: OrderStatus, to: OrderStatus) -> bool {
    use OrderStatus::*;
    matches!(
        (from, to),
        (Released, InProgress | QualityInterruption | Completed)
            | (InProgress, QualityInterruption | Completed)
            | (QualityInterruption, Resumed)
            | (Resumed, InProgress | QualityInterruption | Completed)
    )
}

/// The mock ERP.
#[derive(Clone, Debug)]
pub struct Erp {
    desk: Desk,
    ledger: Ledger,
    outbox: Outbox,
    st: State,
}

#[derive(Clone, Debug, Default)]
struct State {
    personality: Personality,
    orders: FxHashMap<OrderId, OrderRecord>,
    holds: FxHashMap<HoldId, HoldRecord>,
    /// Active holds: few at any time, scanned on every receipt.
    active: Vec<(SerialRange, HoldId)>,
    stock: FxHashMap<MaterialId, i64>,
    materials: MasterData,
}

system_of_record!(Erp, System::Erp);

impl Erp {
    /// An empty ERP with this personality.
    pub fn new(personality: Personality) -> Erp {
        Erp {
            desk: Desk::new(personality),
            ledger: Ledger::new(System::Erp),
            outbox: Outbox::new(SOURCE.to_owned()),
            st: State {
                personality,
                ..State::default()
            },
        }
    }

    /// Serves one integration call (see the module doc for the rules).
    pub fn apply(
        &mut self,
        now: Instant,
        key: Option<&IdempotencyKey>,
        request: &Request,
    ) -> Reply {
        let Erp {
            desk, ledger, st, ..
        } = self;
        desk.serve(now, key, request, || st.handle(now, key, request, ledger))
    }

    // ---- operator API ----

    /// ERP releases a production order to its line: posted and emitted as `OrderReleased`.
    pub fn release_order(
        &mut self,
        now: Instant,
        order: ProductionOrder,
    ) -> Result<Receipt, OperatorError> {
        if self.st.orders.contains_key(&order.id) {
            return Err(OperatorError::Duplicate {
                what: "order",
                id: order.id.to_string(),
            });
        }
        let receipt = self.ledger.post(
            now,
            Origin::Operator,
            None,
            Posting::OrderReleased(order.clone()),
        );
        self.outbox.emit(
            EventData::OrderReleased(order.clone()),
            Some(order.id.to_string()),
            Some(order.plant.clone()),
        );
        self.st.orders.insert(
            order.id.clone(),
            OrderRecord {
                order,
                status: OrderStatus::Released,
                status_receipt: receipt,
                good: 0,
                scrap: 0,
                received: Vec::new(),
            },
        );
        Ok(receipt)
    }

    /// Publishes the next version of a material master (key = material id): posted and emitted as
    /// `MasterDataPublished`.
    pub fn publish_material(&mut self, now: Instant, material: Material) -> MasterDataRecord {
        let key =
            RecordKey::new(material.id.as_str()).expect("a material id is a valid record key");
        self.st.materials.publish(
            now,
            key,
            MasterDataPayload::Material(material),
            &mut self.ledger,
            &mut self.outbox,
            None,
        )
    }

    /// Publishes many materials; returns how many.
    pub fn publish_materials(
        &mut self,
        now: Instant,
        materials: impl IntoIterator<Item = Material>,
    ) -> usize {
        materials
            .into_iter()
            .map(|m| self.publish_material(now, m))
            .count()
    }

    // ---- queries ----

    /// A production order.
    pub fn order(&self, id: &OrderId) -> Option<&OrderRecord> {
        self.st.orders.get(id)
    }

    /// All production orders (unordered).
    pub fn orders(&self) -> impl Iterator<Item = &OrderRecord> + '_ {
        self.st.orders.values()
    }

    /// A hold.
    pub fn hold(&self, id: &HoldId) -> Option<&HoldRecord> {
        self.st.holds.get(id)
    }

    /// All holds (unordered).
    pub fn holds(&self) -> impl Iterator<Item = &HoldRecord> + '_ {
        self.st.holds.values()
    }

    /// The active hold blocking any of `serials`, if one does.
    pub fn active_hold_on(&self, serials: &SerialRange) -> Option<&HoldId> {
        self.st.active_hold_on(serials)
    }

    /// Stock of a material: receipts minus issues (may go negative: spare parts are not received
    /// in a simulation).
    pub fn stock(&self, material: &MaterialId) -> i64 {
        self.st.stock.get(material).copied().unwrap_or(0)
    }

    /// The current version of a published material.
    pub fn material(&self, id: &MaterialId) -> Option<&HeldRecord> {
        let key = RecordKey::new(id.as_str()).ok()?;
        self.st.materials.get(MasterDataKind::Material, &key)
    }

    /// Number of published materials.
    pub fn material_count(&self) -> usize {
        self.st.materials.len(MasterDataKind::Material)
    }
}

impl State {
    fn active_hold_on(&self, serials: &SerialRange) -> Option<&HoldId> {
        self.active
            .iter()
            .find(|(r, _)| r.overlaps(serials))
            .map(|(_, h)| h)
    }

    /// Adds to a material's stock, cloning its id only the first time.
    fn add_stock(&mut self, material: &MaterialId, delta: i64) {
        match self.stock.get_mut(material) {
            Some(q) => *q += delta,
            None => {
                self.stock.insert(material.clone(), delta);
            }
        }
    }

    fn held_conflict(&self, serials: &SerialRange) -> Option<Reply> {
        self.active_hold_on(serials)
            .map(|h| Reply::conflict(format!("serials {serials} overlap active hold {h}")))
    }

    fn handle(
        &mut self,
        now: Instant,
        key: Option<&IdempotencyKey>,
        request: &Request,
        ledger: &mut Ledger,
    ) -> Reply {
        match request {
            Request::PostHold(hold) => self.post_hold(now, key, hold, ledger),
            Request::ReleaseHold { hold, decision } => {
                self.release_hold(now, key, hold, *decision, ledger)
            }
            Request::SetOrderStatus {
                order,
                status,
                reason,
            } => self.set_status(now, key, order, *status, reason, ledger),
            Request::PostGoodsMovement(m) => self.goods_movement(now, key, m, ledger),
            Request::PostCost(c) => {
                if c.amount < Money::ZERO {
                    return Reply::invalid(
                        "amount",
                        format!("cost amount {} is negative", c.amount),
                    );
                }
                Reply::created(ledger.post(
                    now,
                    Origin::Integration,
                    key,
                    Posting::CostPosted(c.clone()),
                ))
            }
            Request::ConfirmProduction(c) => self.confirm(now, key, c, ledger),
            _ => not_mine(System::Erp, request),
        }
    }

    fn post_hold(
        &mut self,
        now: Instant,
        key: Option<&IdempotencyKey>,
        hold: &Hold,
        ledger: &mut Ledger,
    ) -> Reply {
        let Some(order) = self.orders.get(&hold.order) else {
            return Reply::conflict(format!("order {} does not exist", hold.order));
        };
        if !order.order.serials.covers(&hold.serials) {
            return Reply::invalid(
                "serials",
                format!(
                    "serials {} are not within order {} ({})",
                    hold.serials, hold.order, order.order.serials
                ),
            );
        }
        if order.order.material != hold.material {
            return Reply::invalid(
                "material",
                format!(
                    "order {} builds {}, not {}",
                    hold.order, order.order.material, hold.material
                ),
            );
        }
        if let Some(rec) = self.holds.get(&hold.id)
            && rec.state == HoldState::Active
            && rec.hold != *hold
        {
            return Reply::conflict(format!(
                "hold {} is active with other content (serials {}, order {})",
                hold.id, rec.hold.serials, rec.hold.order
            ));
        }
        let receipt = ledger.post(
            now,
            Origin::Integration,
            key,
            Posting::HoldPosted(hold.clone()),
        );
        match self.holds.get_mut(&hold.id) {
            Some(rec) => {
                rec.posted.push(receipt);
                if rec.state != HoldState::Active {
                    // A new hold document for an old hold id: it blocks again.
                    rec.hold = hold.clone();
                    rec.state = HoldState::Active;
                    rec.released = None;
                    self.active.push((hold.serials, hold.id.clone()));
                }
            }
            None => {
                self.holds.insert(
                    hold.id.clone(),
                    HoldRecord {
                        hold: hold.clone(),
                        state: HoldState::Active,
                        posted: vec![receipt],
                        released: None,
                    },
                );
                self.active.push((hold.serials, hold.id.clone()));
            }
        }
        Reply::created(receipt)
    }

    fn release_hold(
        &mut self,
        now: Instant,
        key: Option<&IdempotencyKey>,
        hold: &HoldId,
        decision: DispositionDecision,
        ledger: &mut Ledger,
    ) -> Reply {
        let Some(rec) = self.holds.get_mut(hold) else {
            return Reply::conflict(format!("hold {hold} does not exist"));
        };
        if rec.state != HoldState::Active {
            return Reply::conflict(format!("hold {hold} is already released"));
        }
        let receipt = ledger.post(
            now,
            Origin::Integration,
            key,
            Posting::HoldReleased {
                hold: hold.clone(),
                order: rec.hold.order.clone(),
                serials: rec.hold.serials,
                nc: rec.hold.nc.clone(),
                decision,
            },
        );
        rec.state = HoldState::Released(decision);
        rec.released = Some(receipt);
        self.active.retain(|(_, h)| h != hold);
        Reply::created(receipt)
    }

    fn set_status(
        &mut self,
        now: Instant,
        key: Option<&IdempotencyKey>,
        order: &OrderId,
        to: OrderStatus,
        reason: &str,
        ledger: &mut Ledger,
    ) -> Reply {
        let Some(rec) = self.orders.get_mut(order) else {
            return Reply::conflict(format!("order {order} does not exist"));
        };
        let from = rec.status;
        if from == to {
            if !self.personality.reposts_state() {
                return Reply::unchanged(rec.status_receipt);
            }
        } else if !transition_allowed(from, to) {
            return Reply::conflict(format!(
                "order {order}: status {from:?} cannot become {to:?}"
            ));
        }
        let receipt = ledger.post(
            now,
            Origin::Integration,
            key,
            Posting::OrderStatusSet {
                order: order.clone(),
                from,
                to,
                reason: reason.to_owned(),
            },
        );
        rec.status = to;
        rec.status_receipt = receipt;
        Reply::created(receipt)
    }

    fn goods_movement(
        &mut self,
        now: Instant,
        key: Option<&IdempotencyKey>,
        m: &GoodsMovement,
        ledger: &mut Ledger,
    ) -> Reply {
        if m.quantity == 0 {
            return Reply::invalid("quantity", "a goods movement moves at least one unit");
        }
        if let Some(order) = &m.order
            && !self.orders.contains_key(order)
        {
            return Reply::conflict(format!("order {order} does not exist"));
        }
        if m.kind == MovementKind::GoodsReceipt
            && let Some(serials) = &m.serials
        {
            if serials.len() != u64::from(m.quantity) {
                return Reply::invalid(
                    "quantity",
                    format!("quantity {} does not match serials {serials}", m.quantity),
                );
            }
            if let Some(conflict) = self.held_conflict(serials) {
                return conflict;
            }
        }
        let receipt = ledger.post(
            now,
            Origin::Integration,
            key,
            Posting::GoodsMoved(m.clone()),
        );
        let delta = i64::from(m.quantity);
        match m.kind {
            MovementKind::GoodsIssue => self.add_stock(&m.material, -delta),
            MovementKind::GoodsReceipt => {
                self.add_stock(&m.material, delta);
                if let Some(rec) = m.order.as_ref().and_then(|o| self.orders.get_mut(o)) {
                    rec.good += u64::from(m.quantity);
                    rec.received.extend(m.serials);
                }
            }
        }
        Reply::created(receipt)
    }

    fn confirm(
        &mut self,
        now: Instant,
        key: Option<&IdempotencyKey>,
        c: &ProductionConfirmation,
        ledger: &mut Ledger,
    ) -> Reply {
        let Some(rec) = self.orders.get(&c.order) else {
            return Reply::conflict(format!("order {} does not exist", c.order));
        };
        if rec.status == OrderStatus::Completed {
            return Reply::conflict(format!("order {} is completed", c.order));
        }
        if rec.order.material != c.material {
            return Reply::invalid(
                "material",
                format!(
                    "order {} builds {}, not {}",
                    c.order, rec.order.material, c.material
                ),
            );
        }
        if !rec.order.serials.covers(&c.serials) {
            return Reply::invalid(
                "serials",
                format!(
                    "serials {} are not within order {} ({})",
                    c.serials, c.order, rec.order.serials
                ),
            );
        }
        if u64::from(c.good) + u64::from(c.scrap) != c.serials.len() {
            return Reply::invalid(
                "good",
                format!(
                    "good {} + scrap {} does not match serials {}",
                    c.good, c.scrap, c.serials
                ),
            );
        }
        if let Some(conflict) = self.held_conflict(&c.serials) {
            return conflict;
        }
        let receipt = ledger.post(
            now,
            Origin::Integration,
            key,
            Posting::ProductionConfirmed(c.clone()),
        );
        let rec = self.orders.get_mut(&c.order).expect("checked above");
        if rec.status == OrderStatus::Released {
            rec.status = OrderStatus::InProgress;
        }
        rec.good += u64::from(c.good);
        rec.scrap += u64::from(c.scrap);
        rec.received.push(c.serials);
        self.add_stock(&c.material, i64::from(c.good));
        Reply::created(receipt)
    }
}
