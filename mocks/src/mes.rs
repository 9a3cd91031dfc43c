//! Mock MES of one plant: stations (running / stopped / down), line control, production
//! confirmations, machine states, alarms, dispatched orders and consumed master data.
//!
//! Integration API:
//! - `ControlStation` — the station must be known (409). Stop of a stopped station, or resume of a
//!   resumed one, is a 200 no-op with the earlier receipt (Modern, Saas) or posts again (Legacy);
//!   resume of a station never stopped is a 409.
//! - `DispatchOrder` — the order must be for this plant (422 `plant`); every accepted request is a
//!   new posting.
//! - `ApplyMasterData` — materials, assets and inspection specs, versions only going up.
//!
//! Operator API (the plant model): [`Mes::unit_completed`] batches production confirmations per
//! station ([`MesConfig::batch_size`] contiguous serials of one order) and emits
//! `ProductionConfirmed` when a batch is full, the serials jump, the order changes, or on
//! [`Mes::end_order`] / [`Mes::flush`]; [`Mes::machine_down`] / [`Mes::machine_up`] emit
//! `MachineStateChanged`; [`Mes::raise_alarm`] emits `AlarmRaised`. Queries such as
//! [`Mes::is_stopped`] and [`Mes::can_produce`] let the plant obey stops.

use crate::common::{HeldRecord, MasterData, Outbox, not_mine};
use crate::ledger::{Ledger, Origin, Posting};
use crate::personality::{Desk, Personality};
use crate::reply::{Receipt, Reply};
use crate::{OperatorError, system_of_record};
use plantloop_core::call::{IdempotencyKey, Request};
use plantloop_core::event::{EventData, MachineStateChanged};
use plantloop_core::time::Instant;
use plantloop_core::*;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

/// MES settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MesConfig {
    /// Units per production confirmation (≥ 1).
    pub batch_size: u32,
}

impl Default for MesConfig {
    /// Batches of 10 units.
    fn default() -> Self {
        MesConfig { batch_size: 10 }
    }
}

/// A station as MES knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StationRecord {
    /// Stopped by a line-control command.
    pub stopped: bool,
    /// Broken down.
    pub down: bool,
    /// The posting of the last stop or resume.
    pub last_control: Option<Receipt>,
    /// Units completed at this station.
    pub units: u64,
}

impl StationRecord {
    /// Running, stopped (by control, takes precedence) or down.
    pub fn state(&self) -> StationState {
        if self.stopped {
            StationState::Stopped
        } else if self.down {
            StationState::Down
        } else {
            StationState::Running
        }
    }
}

#[derive(Clone, Debug)]
struct Batch {
    order: OrderId,
    material: MaterialId,
    first: u64,
    last: u64,
    good: u32,
    scrap: u32,
}

/// The mock MES of one plant.
#[derive(Clone, Debug)]
pub struct Mes {
    desk: Desk,
    ledger: Ledger,
    outbox: Outbox,
    st: State,
}

#[derive(Clone, Debug)]
struct State {
    personality: Personality,
    plant: PlantId,
    config: MesConfig,
    stations: FxHashMap<StationId, StationRecord>,
    batches: FxHashMap<StationId, Batch>,
    dispatched: FxHashMap<OrderId, Receipt>,
    master: MasterData,
    /// Deliberate defect (feature `sabotage`): stops are acknowledged and recorded, but never
    /// reach the station.
    #[cfg(feature = "sabotage")]
    stop_not_enforced: bool,
}

system_of_record!(Mes, System::Mes);

impl Mes {
    /// The MES of `plant` with these stations; its events come from `/plants/{plant}/mes`.
    pub fn new(
        personality: Personality,
        plant: PlantId,
        config: MesConfig,
        stations: impl IntoIterator<Item = StationId>,
    ) -> Mes {
        assert!(config.batch_size >= 1, "a batch holds at least one unit");
        let stations = stations
            .into_iter()
            .map(|s| (s, StationRecord::default()))
            .collect();
        Mes {
            desk: Desk::new(personality),
            ledger: Ledger::new(System::Mes),
            outbox: Outbox::new(format!("/plants/{plant}/mes")),
            st: State {
                personality,
                plant,
                config,
                stations,
                batches: FxHashMap::default(),
                dispatched: FxHashMap::default(),
                master: MasterData::default(),
                #[cfg(feature = "sabotage")]
                stop_not_enforced: false,
            },
        }
    }

    /// Serves one integration call (see the module doc).
    pub fn apply(
        &mut self,
        now: Instant,
        key: Option<&IdempotencyKey>,
        request: &Request,
    ) -> Reply {
        let Mes {
            desk, ledger, st, ..
        } = self;
        desk.serve(now, key, request, || st.handle(now, key, request, ledger))
    }

    // ---- operator API ----

    /// Adds a station (running). Returns false if it was known.
    pub fn add_station(&mut self, station: StationId) -> bool {
        if self.st.stations.contains_key(&station) {
            return false;
        }
        self.st.stations.insert(station, StationRecord::default());
        true
    }

    /// A unit left `station`, good or scrap. Batches it into a production confirmation. 409 if the
    /// station is unknown, stopped or down (the plant must not produce then).
    pub fn unit_completed(
        &mut self,
        now: Instant,
        station: &StationId,
        serial: u64,
        order: &OrderId,
        material: &MaterialId,
        good: bool,
    ) -> Result<(), OperatorError> {
        let rec = self
            .st
            .stations
            .get_mut(station)
            .ok_or_else(|| OperatorError::unknown("station", station))?;
        if rec.stopped || rec.down {
            return Err(OperatorError::state(
                "station",
                station,
                format!("is {:?}", rec.state()),
            ));
        }
        rec.units += 1;
        let size = u64::from(self.st.config.batch_size);
        let fits = self.st.batches.get(station).is_some_and(|b| {
            &b.order == order && &b.material == material && b.last.checked_add(1) == Some(serial)
        });
        if !fits {
            self.flush_station(now, station);
        }
        match self.st.batches.get_mut(station) {
            Some(b) => {
                b.last = serial;
                if good { b.good += 1 } else { b.scrap += 1 }
            }
            None => {
                let (g, s) = if good { (1, 0) } else { (0, 1) };
                self.st.batches.insert(
                    station.clone(),
                    Batch {
                        order: order.clone(),
                        material: material.clone(),
                        first: serial,
                        last: serial,
                        good: g,
                        scrap: s,
                    },
                );
            }
        }
        if self
            .st
            .batches
            .get(station)
            .is_some_and(|b| b.last - b.first + 1 >= size)
        {
            self.flush_station(now, station);
        }
        Ok(())
    }

    /// The order ended: confirms its open batches. Returns how many confirmations were emitted.
    pub fn end_order(&mut self, now: Instant, order: &OrderId) -> usize {
        let mut stations: Vec<StationId> = self
            .st
            .batches
            .iter()
            .filter(|(_, b)| &b.order == order)
            .map(|(s, _)| s.clone())
            .collect();
        stations.sort();
        stations
            .iter()
            .filter(|s| self.flush_station(now, s))
            .count()
    }

    /// Confirms every open batch (in station order). Returns how many confirmations were emitted.
    pub fn flush(&mut self, now: Instant) -> usize {
        let mut stations: Vec<StationId> = self.st.batches.keys().cloned().collect();
        stations.sort();
        stations
            .iter()
            .filter(|s| self.flush_station(now, s))
            .count()
    }

    /// A station broke down: emits `MachineStateChanged { Down }`. 409 if unknown or already down.
    pub fn machine_down(
        &mut self,
        now: Instant,
        station: &StationId,
        code: Option<String>,
    ) -> Result<(), OperatorError> {
        let _ = now;
        let rec = self
            .st
            .stations
            .get_mut(station)
            .ok_or_else(|| OperatorError::unknown("station", station))?;
        if rec.down {
            return Err(OperatorError::state("station", station, "is already down"));
        }
        rec.down = true;
        let data = MachineStateChanged {
            station: station.clone(),
            state: StationState::Down,
            code,
        };
        self.outbox.emit(
            EventData::MachineStateChanged(data),
            None,
            Some(self.st.plant.clone()),
        );
        Ok(())
    }

    /// A station is repaired: emits `MachineStateChanged` with its new state (running, or stopped
    /// if a stop command still holds it). 409 if unknown or not down.
    pub fn machine_up(&mut self, now: Instant, station: &StationId) -> Result<(), OperatorError> {
        let _ = now;
        let rec = self
            .st
            .stations
            .get_mut(station)
            .ok_or_else(|| OperatorError::unknown("station", station))?;
        if !rec.down {
            return Err(OperatorError::state("station", station, "is not down"));
        }
        rec.down = false;
        let data = MachineStateChanged {
            station: station.clone(),
            state: rec.state(),
            code: None,
        };
        self.outbox.emit(
            EventData::MachineStateChanged(data),
            None,
            Some(self.st.plant.clone()),
        );
        Ok(())
    }

    /// A machine alarm: emits `AlarmRaised`. 409 if the station is unknown.
    pub fn raise_alarm(&mut self, now: Instant, alarm: Alarm) -> Result<(), OperatorError> {
        let _ = now;
        if !self.st.stations.contains_key(&alarm.station) {
            return Err(OperatorError::unknown("station", &alarm.station));
        }
        self.outbox.emit(
            EventData::AlarmRaised(alarm),
            None,
            Some(self.st.plant.clone()),
        );
        Ok(())
    }

    // ---- queries ----

    /// The plant this MES runs.
    pub fn plant(&self) -> &PlantId {
        &self.st.plant
    }

    /// A station.
    pub fn station(&self, station: &StationId) -> Option<&StationRecord> {
        self.st.stations.get(station)
    }

    /// A station's state.
    pub fn station_state(&self, station: &StationId) -> Option<StationState> {
        self.st.stations.get(station).map(StationRecord::state)
    }

    /// True when a line-control stop holds the station.
    pub fn is_stopped(&self, station: &StationId) -> bool {
        #[cfg(feature = "sabotage")]
        if self.st.stop_not_enforced {
            return false;
        }
        self.st.stations.get(station).is_some_and(|s| s.stopped)
    }

    /// Turns on a deliberate defect: this MES acknowledges and records stops but never stops the
    /// station (for the checker's own tests; feature `sabotage` only).
    #[cfg(feature = "sabotage")]
    pub fn sabotage_stop_not_enforced(&mut self) {
        self.st.stop_not_enforced = true;
    }

    /// True when the station is broken down.
    pub fn is_down(&self, station: &StationId) -> bool {
        self.st.stations.get(station).is_some_and(|s| s.down)
    }

    /// True when the station is known, not stopped and not down.
    pub fn can_produce(&self, station: &StationId) -> bool {
        self.st
            .stations
            .get(station)
            .is_some_and(|s| !s.stopped && !s.down)
    }

    /// True when the order was dispatched to this MES.
    pub fn is_dispatched(&self, order: &OrderId) -> bool {
        self.st.dispatched.contains_key(order)
    }

    /// The version of a master-data record MES applied.
    pub fn master_data(&self, kind: MasterDataKind, key: &RecordKey) -> Option<&HeldRecord> {
        self.st.master.get(kind, key)
    }

    /// Emits the station's open batch as a confirmation; false if it had none.
    fn flush_station(&mut self, now: Instant, station: &StationId) -> bool {
        let _ = now;
        let Some(b) = self.st.batches.remove(station) else {
            return false;
        };
        let correlation = b.order.to_string();
        let c = ProductionConfirmation {
            order: b.order,
            station: station.clone(),
            material: b.material,
            serials: SerialRange::new(b.first, b.last).expect("a batch's serials ascend"),
            good: b.good,
            scrap: b.scrap,
        };
        self.outbox.emit(
            EventData::ProductionConfirmed(c),
            Some(correlation),
            Some(self.st.plant.clone()),
        );
        true
    }
}

impl State {
    fn handle(
        &mut self,
        now: Instant,
        key: Option<&IdempotencyKey>,
        request: &Request,
        ledger: &mut Ledger,
    ) -> Reply {
        match request {
            Request::ControlStation(lc) => self.control(now, key, lc, ledger),
            Request::DispatchOrder(po) => {
                if po.plant != self.plant {
                    return Reply::invalid(
                        "plant",
                        format!(
                            "order {} is for plant {}, not {}",
                            po.id, po.plant, self.plant
                        ),
                    );
                }
                let receipt = ledger.post(
                    now,
                    Origin::Integration,
                    key,
                    Posting::OrderDispatched {
                        order: po.id.clone(),
                        line: po.line.clone(),
                    },
                );
                self.dispatched.entry(po.id.clone()).or_insert(receipt);
                Reply::created(receipt)
            }
            Request::ApplyMasterData(record) => self.master.apply(now, key, record, ledger),
            _ => not_mine(System::Mes, request),
        }
    }

    fn control(
        &mut self,
        now: Instant,
        key: Option<&IdempotencyKey>,
        lc: &LineControl,
        ledger: &mut Ledger,
    ) -> Reply {
        let Some(rec) = self.stations.get_mut(&lc.station) else {
            return Reply::conflict(format!("station {} does not exist", lc.station));
        };
        let stop = lc.action == LineAction::Stop;
        if rec.stopped == stop {
            match rec.last_control {
                None => {
                    return Reply::conflict(format!("station {} was never stopped", lc.station));
                }
                Some(r) if !self.personality.reposts_state() => return Reply::unchanged(r),
                Some(_) => {}
            }
        }
        let posting = if stop {
            Posting::StationStopped {
                station: lc.station.clone(),
                reason: lc.reason.clone(),
                nc: lc.nc.clone(),
            }
        } else {
            Posting::StationResumed {
                station: lc.station.clone(),
                reason: lc.reason.clone(),
                nc: lc.nc.clone(),
            }
        };
        let receipt = ledger.post(now, Origin::Integration, key, posting);
        rec.stopped = stop;
        rec.last_control = Some(receipt);
        Reply::created(receipt)
    }
}
