//! Mock CMMS/EAM: the asset hierarchy (plant → line → station placements, owned and published as
//! versioned master data), maintenance work orders and downtime classification.
//!
//! Integration API: `CreateWorkOrder` — the asset must be known (409) and placed at the given
//! station (422 `station`). Every accepted request is a new work-order document and emits
//! `WorkOrderCreated`; a second document for a work-order id already known is posted (the checker
//! sees the duplicate) but the work order keeps its one lifecycle.
//!
//! Operator API: [`Cmms::start_work`] (created → in progress), [`Cmms::complete_work`] (created or
//! in progress → completed, emits `WorkOrderCompleted` with exactly the parts and labour recorded;
//! 409 when not open), [`Cmms::classify_downtime`] (emits `DowntimeClassified`),
//! [`Cmms::publish_asset`] / [`Cmms::publish_assets`] (emit `MasterDataPublished`).

use crate::common::{HeldRecord, MasterData, Outbox, not_mine};
use crate::ledger::{Ledger, Origin, Posting};
use crate::personality::{Desk, Personality};
use crate::reply::{Receipt, Reply};
use crate::{OperatorError, system_of_record};
use plantloop_core::call::{IdempotencyKey, Request};
use plantloop_core::event::{EventData, WorkOrderCreated};
use plantloop_core::time::Instant;
use plantloop_core::*;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

/// The CloudEvents source of CMMS events.
pub const SOURCE: &str = "/cmms";

/// Work-order lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkOrderStatus {
    Created,
    InProgress,
    Completed,
}

/// A work order as CMMS holds it, with what it recorded at completion (the cost-capture check
/// compares this, to the cent, with ERP's cost postings).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkOrderRecord {
    pub work_order: MaintenanceWorkOrder,
    pub status: WorkOrderStatus,
    pub created_at: Instant,
    /// Every work-order document posted for this id (more than one is a duplicate posting).
    pub created: Vec<Receipt>,
    pub started_at: Option<Instant>,
    pub completed_at: Option<Instant>,
    pub completion: Option<WorkOrderCompletion>,
}

impl WorkOrderRecord {
    /// True while created or in progress.
    pub fn is_open(&self) -> bool {
        self.status != WorkOrderStatus::Completed
    }
}

/// The mock CMMS.
#[derive(Clone, Debug)]
pub struct Cmms {
    desk: Desk,
    ledger: Ledger,
    outbox: Outbox,
    st: State,
}

#[derive(Clone, Debug, Default)]
struct State {
    assets: MasterData,
    /// Station → asset, from the current placements.
    at_station: FxHashMap<StationId, AssetId>,
    work_orders: FxHashMap<WorkOrderId, WorkOrderRecord>,
    downtimes: Vec<DowntimeEvent>,
}

system_of_record!(Cmms, System::Cmms);

impl Cmms {
    /// An empty CMMS with this personality.
    pub fn new(personality: Personality) -> Cmms {
        Cmms {
            desk: Desk::new(personality),
            ledger: Ledger::new(System::Cmms),
            outbox: Outbox::new(SOURCE.to_owned()),
            st: State::default(),
        }
    }

    /// Serves one integration call (see the module doc).
    pub fn apply(
        &mut self,
        now: Instant,
        key: Option<&IdempotencyKey>,
        request: &Request,
    ) -> Reply {
        let Cmms {
            desk,
            ledger,
            st,
            outbox,
        } = self;
        desk.serve(now, key, request, || {
            st.handle(now, key, request, ledger, outbox)
        })
    }

    // ---- operator API ----

    /// Publishes the next version of an asset placement (key = asset id): posted and emitted as
    /// `MasterDataPublished`.
    pub fn publish_asset(&mut self, now: Instant, placement: AssetPlacement) -> MasterDataRecord {
        let key =
            RecordKey::new(placement.asset.as_str()).expect("an asset id is a valid record key");
        if let Some(old) = self.st.assets.get(MasterDataKind::Asset, &key)
            && let MasterDataPayload::Asset(p) = &old.record.payload
            && p.station != placement.station
        {
            self.st.at_station.remove(&p.station);
        }
        self.st
            .at_station
            .insert(placement.station.clone(), placement.asset.clone());
        let plant = Some(placement.plant.clone());
        self.st.assets.publish(
            now,
            key,
            MasterDataPayload::Asset(placement),
            &mut self.ledger,
            &mut self.outbox,
            plant,
        )
    }

    /// Publishes many placements; returns how many.
    pub fn publish_assets(
        &mut self,
        now: Instant,
        placements: impl IntoIterator<Item = AssetPlacement>,
    ) -> usize {
        placements
            .into_iter()
            .map(|p| self.publish_asset(now, p))
            .count()
    }

    /// A technician starts a created work order. 409 if unknown or not in state created.
    pub fn start_work(&mut self, now: Instant, id: &WorkOrderId) -> Result<Receipt, OperatorError> {
        let rec = self
            .st
            .work_orders
            .get_mut(id)
            .ok_or_else(|| OperatorError::unknown("work order", id))?;
        if rec.status != WorkOrderStatus::Created {
            return Err(OperatorError::state(
                "work order",
                id,
                format!("is {:?}, not created", rec.status),
            ));
        }
        rec.status = WorkOrderStatus::InProgress;
        rec.started_at = Some(now);
        Ok(self.ledger.post(
            now,
            Origin::Operator,
            None,
            Posting::WorkOrderStarted {
                work_order: id.clone(),
            },
        ))
    }

    /// Completes an open work order with root cause, spare parts and labour: posted and emitted as
    /// `WorkOrderCompleted` (correlation: the work order's NC, else the work order). 409 if unknown
    /// or not open.
    pub fn complete_work(
        &mut self,
        now: Instant,
        id: &WorkOrderId,
        root_cause: &str,
        parts: Vec<SparePartUsage>,
        labour: Vec<LabourEntry>,
    ) -> Result<Receipt, OperatorError> {
        let rec = self
            .st
            .work_orders
            .get_mut(id)
            .ok_or_else(|| OperatorError::unknown("work order", id))?;
        if !rec.is_open() {
            return Err(OperatorError::state("work order", id, "is not open"));
        }
        let wo = &rec.work_order;
        let completion = WorkOrderCompletion {
            work_order: wo.id.clone(),
            asset: wo.asset.clone(),
            station: wo.station.clone(),
            root_cause: root_cause.to_owned(),
            parts,
            labour,
            nc: wo.nc.clone(),
        };
        rec.status = WorkOrderStatus::Completed;
        rec.completed_at = Some(now);
        rec.completion = Some(completion.clone());
        let receipt = self.ledger.post(
            now,
            Origin::Operator,
            None,
            Posting::WorkOrderCompleted(Box::new(completion.clone())),
        );
        let correlation = completion
            .nc
            .as_ref()
            .map_or_else(|| completion.work_order.to_string(), NcId::to_string);
        let plant = self.st.plant_of(&completion.asset);
        self.outbox.emit(
            EventData::WorkOrderCompleted(completion),
            Some(correlation),
            plant,
        );
        Ok(receipt)
    }

    /// CMMS classifies a downtime of a station: posted and emitted as `DowntimeClassified`.
    /// 422 if it ends before it starts.
    pub fn classify_downtime(
        &mut self,
        now: Instant,
        station: &StationId,
        started_at: Instant,
        ended_at: Option<Instant>,
        class: DowntimeClass,
    ) -> Result<Receipt, OperatorError> {
        if ended_at.is_some_and(|e| e < started_at) {
            return Err(OperatorError::Invalid {
                field: "ended_at",
                reason: "before started_at".into(),
            });
        }
        let d = DowntimeEvent {
            station: station.clone(),
            started_at,
            ended_at,
            class: Some(class),
        };
        let receipt = self.ledger.post(
            now,
            Origin::Operator,
            None,
            Posting::DowntimeClassified(d.clone()),
        );
        let plant = self
            .st
            .at_station
            .get(station)
            .and_then(|a| self.st.plant_of(a));
        self.st.downtimes.push(d.clone());
        self.outbox
            .emit(EventData::DowntimeClassified(d), None, plant);
        Ok(receipt)
    }

    // ---- queries ----

    /// A work order.
    pub fn work_order(&self, id: &WorkOrderId) -> Option<&WorkOrderRecord> {
        self.st.work_orders.get(id)
    }

    /// All work orders (unordered).
    pub fn work_orders(&self) -> impl Iterator<Item = &WorkOrderRecord> + '_ {
        self.st.work_orders.values()
    }

    /// Completed work orders with what CMMS recorded (unordered).
    pub fn completions(&self) -> impl Iterator<Item = &WorkOrderCompletion> + '_ {
        self.st
            .work_orders
            .values()
            .filter_map(|w| w.completion.as_ref())
    }

    /// Open work orders of an asset.
    pub fn open_work_orders<'a>(
        &'a self,
        asset: &'a AssetId,
    ) -> impl Iterator<Item = &'a WorkOrderRecord> + 'a {
        self.st
            .work_orders
            .values()
            .filter(move |w| w.is_open() && &w.work_order.asset == asset)
    }

    /// The current placement of an asset.
    pub fn asset(&self, id: &AssetId) -> Option<&AssetPlacement> {
        self.st.placement(id)
    }

    /// The asset placed at a station.
    pub fn asset_at(&self, station: &StationId) -> Option<&AssetId> {
        self.st.at_station.get(station)
    }

    /// The published asset records, current versions (unordered).
    pub fn assets(&self) -> impl Iterator<Item = &HeldRecord> + '_ {
        self.st.assets.iter(MasterDataKind::Asset)
    }

    /// Classified downtimes, in order.
    pub fn downtimes(&self) -> &[DowntimeEvent] {
        &self.st.downtimes
    }
}

impl State {
    fn placement(&self, asset: &AssetId) -> Option<&AssetPlacement> {
        // An asset id is a valid record key, and an invalid one is held under no key.
        match &self
            .assets
            .get_str(MasterDataKind::Asset, asset.as_str())?
            .record
            .payload
        {
            MasterDataPayload::Asset(p) => Some(p),
            _ => None,
        }
    }

    fn plant_of(&self, asset: &AssetId) -> Option<PlantId> {
        self.placement(asset).map(|p| p.plant.clone())
    }

    fn handle(
        &mut self,
        now: Instant,
        key: Option<&IdempotencyKey>,
        request: &Request,
        ledger: &mut Ledger,
        outbox: &mut Outbox,
    ) -> Reply {
        let Request::CreateWorkOrder(wo) = request else {
            return not_mine(System::Cmms, request);
        };
        let Some(placement) = self.placement(&wo.asset) else {
            return Reply::conflict(format!("asset {} does not exist", wo.asset));
        };
        if placement.station != wo.station {
            return Reply::invalid(
                "station",
                format!(
                    "asset {} is at station {}, not {}",
                    wo.asset, placement.station, wo.station
                ),
            );
        }
        let plant = Some(placement.plant.clone());
        let receipt = ledger.post(
            now,
            Origin::Integration,
            key,
            Posting::WorkOrderCreated(Box::new(wo.clone())),
        );
        match self.work_orders.get_mut(&wo.id) {
            Some(rec) => rec.created.push(receipt),
            None => {
                self.work_orders.insert(
                    wo.id.clone(),
                    WorkOrderRecord {
                        work_order: wo.clone(),
                        status: WorkOrderStatus::Created,
                        created_at: now,
                        created: vec![receipt],
                        started_at: None,
                        completed_at: None,
                        completion: None,
                    },
                );
            }
        }
        let correlation = wo
            .nc
            .as_ref()
            .map_or(wo.id.as_str(), NcId::as_str)
            .to_owned();
        outbox.emit(
            EventData::WorkOrderCreated(WorkOrderCreated {
                work_order: wo.id.clone(),
                asset: wo.asset.clone(),
                station: wo.station.clone(),
                kind: wo.kind,
                nc: wo.nc.clone(),
            }),
            Some(correlation),
            plant,
        );
        Reply::created(receipt)
    }
}
