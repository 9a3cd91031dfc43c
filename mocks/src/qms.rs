//! Mock QMS: inspection results, nonconformance detection and lifecycle, disposition, deviation,
//! CAPA, inspection specs (owned) and materials/assets (consumed).
//!
//! **NC detection** ([`NcRule`]): an asset-related NC is raised at the k-th failure of one
//! characteristic at one station within the window (the k failures span at most `window`). The
//! failures that raised it are forgotten; while that NC is open, further failures of the pair are
//! counted on it but raise no second NC.
//!
//! **Lifecycle** of an NC ([`NcStatus`]): open → contained (operator) → maintenance recorded (the
//! core's `RecordMaintenance`) → dispositioned (operator [`Qms::approve_disposition`]) → closed. An
//! asset-related NC opens a deviation and a CAPA; the deviation closes when maintenance is
//! recorded, the CAPA and the NC when maintenance is recorded and the disposition approved (an NC
//! that is not asset-related closes at disposition).
//!
//! Integration API: `RecordMaintenance` (409 for an unknown NC; every accepted request is a new
//! record), `ApplyMasterData` for materials and assets (inspection specs are QMS's own: 422).

use crate::common::{HeldRecord, MasterData, Outbox, not_mine};
use crate::ledger::{Ledger, Origin, Posting};
use crate::personality::{Desk, Personality};
use crate::reply::{Receipt, Reply};
use crate::{OperatorError, system_of_record};
use plantloop_core::call::{IdempotencyKey, Request};
use plantloop_core::event::EventData;
use plantloop_core::time::{Duration, Instant};
use plantloop_core::*;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// The CloudEvents source of QMS events.
pub const SOURCE: &str = "/qms";

/// When failures make an asset-related NC: `failures` failures of one characteristic at one
/// station within `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NcRule {
    /// k ≥ 1.
    pub failures: u32,
    pub window: Duration,
    /// The severity of the NCs this rule raises.
    pub severity: Severity,
}

impl Default for NcRule {
    /// 3 failures within 1 hour, major.
    fn default() -> Self {
        NcRule {
            failures: 3,
            window: Duration::from_hours(1),
            severity: Severity::Major,
        }
    }
}

/// Where an NC is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NcStatus {
    Open,
    Contained,
    MaintenanceRecorded,
    Dispositioned,
    Closed,
}

/// Maintenance facts recorded against an NC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaintenanceFact {
    pub work_order: WorkOrderId,
    pub root_cause: String,
    pub at: Instant,
    pub receipt: Receipt,
}

/// An NC as QMS holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NcRecord {
    pub nc: Nonconformance,
    pub created_at: Instant,
    pub contained_at: Option<Instant>,
    pub maintenance: Vec<MaintenanceFact>,
    pub disposition: Option<(Disposition, Instant)>,
    pub deviation: Option<String>,
    pub capa: Option<CapaId>,
    pub closed_at: Option<Instant>,
    /// Failures of the same pair while this NC was open.
    pub failures_while_open: u32,
}

impl NcRecord {
    /// The lifecycle status.
    pub fn status(&self) -> NcStatus {
        if self.closed_at.is_some() {
            NcStatus::Closed
        } else if self.disposition.is_some() {
            NcStatus::Dispositioned
        } else if !self.maintenance.is_empty() {
            NcStatus::MaintenanceRecorded
        } else if self.contained_at.is_some() {
            NcStatus::Contained
        } else {
            NcStatus::Open
        }
    }
}

/// A deviation or CAPA record (both open with an asset-related NC).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionRecord {
    pub nc: NcId,
    pub opened_at: Instant,
    pub closed_at: Option<Instant>,
}

#[derive(Clone, Debug, Default)]
struct Track {
    /// Recent failures (time, serial): fewer than `rule.failures`.
    recent: VecDeque<(Instant, u64)>,
    open: Option<NcId>,
}

/// The mock QMS.
#[derive(Clone, Debug)]
pub struct Qms {
    desk: Desk,
    ledger: Ledger,
    outbox: Outbox,
    st: State,
}

#[derive(Clone, Debug, Default)]
struct State {
    rule: NcRule,
    tracks: FxHashMap<StationId, FxHashMap<CharacteristicId, Track>>,
    ncs: FxHashMap<NcId, NcRecord>,
    deviations: FxHashMap<String, ActionRecord>,
    capas: FxHashMap<CapaId, ActionRecord>,
    next_nc: u64,
    inspections: u64,
    failed: u64,
    /// Inspection specs (owned) and materials/assets (consumed).
    master: MasterData,
    /// Station → plant, from applied asset placements (for events' `plant`).
    plants: FxHashMap<StationId, PlantId>,
}

system_of_record!(Qms, System::Qms);

impl Qms {
    /// An empty QMS with this personality and NC rule.
    pub fn new(personality: Personality, rule: NcRule) -> Qms {
        assert!(rule.failures >= 1, "an NC rule needs at least one failure");
        Qms {
            desk: Desk::new(personality),
            ledger: Ledger::new(System::Qms),
            outbox: Outbox::new(SOURCE.to_owned()),
            st: State {
                rule,
                ..State::default()
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
        let Qms {
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

    /// Records one inspection result. Returns the NC it raised, if it completed a pattern; the NC
    /// is posted and emitted as `NonconformanceCreated`, with a deviation and a CAPA opened.
    pub fn record_inspection(&mut self, now: Instant, result: &InspectionResult) -> Option<NcId> {
        self.st.inspections += 1;
        if result.passed {
            return None;
        }
        self.st.failed += 1;
        let rule = self.st.rule;
        // Look up by reference; clone the ids only the first time a pair fails.
        if !self.st.tracks.contains_key(&result.station) {
            self.st
                .tracks
                .insert(result.station.clone(), FxHashMap::default());
        }
        let by_char = self
            .st
            .tracks
            .get_mut(&result.station)
            .expect("inserted above");
        if !by_char.contains_key(&result.characteristic) {
            by_char.insert(result.characteristic.clone(), Track::default());
        }
        let track = by_char
            .get_mut(&result.characteristic)
            .expect("inserted above");
        if let Some(open) = &track.open {
            if let Some(rec) = self.st.ncs.get_mut(open) {
                rec.failures_while_open += 1;
            }
            return None;
        }
        track.recent.push_back((now, result.serial));
        while let Some(&(t, _)) = track.recent.front() {
            if now.saturating_since(t) > rule.window {
                track.recent.pop_front();
            } else {
                break;
            }
        }
        if (track.recent.len() as u64) < u64::from(rule.failures) {
            return None;
        }
        let first = track
            .recent
            .iter()
            .map(|&(_, s)| s)
            .min()
            .expect("k ≥ 1 failures");
        let last = track
            .recent
            .iter()
            .map(|&(_, s)| s)
            .max()
            .expect("k ≥ 1 failures");
        let failures = track.recent.len() as u32;
        track.recent.clear();
        self.st.next_nc += 1;
        let id = NcId::new(format!("NC-{:06}", self.st.next_nc)).expect("a valid id");
        track.open = Some(id.clone());
        let nc = Nonconformance {
            id: id.clone(),
            station: result.station.clone(),
            characteristic: result.characteristic.clone(),
            serials: SerialRange::new(first, last).expect("min ≤ max"),
            failures,
            asset_related: true,
            severity: rule.severity,
        };
        self.ledger
            .post(now, Origin::Operator, None, Posting::NcCreated(nc.clone()));
        let deviation = format!("DEV-{:06}", self.st.next_nc);
        let capa = CapaId::new(format!("CAPA-{:06}", self.st.next_nc)).expect("a valid id");
        self.ledger.post(
            now,
            Origin::Operator,
            None,
            Posting::DeviationOpened {
                deviation: deviation.clone(),
                nc: id.clone(),
            },
        );
        self.ledger.post(
            now,
            Origin::Operator,
            None,
            Posting::CapaOpened {
                capa: capa.clone(),
                nc: id.clone(),
            },
        );
        let action = ActionRecord {
            nc: id.clone(),
            opened_at: now,
            closed_at: None,
        };
        self.st.deviations.insert(deviation.clone(), action.clone());
        self.st.capas.insert(capa.clone(), action);
        let plant = self.st.plants.get(&nc.station).cloned();
        self.outbox.emit(
            EventData::NonconformanceCreated(nc.clone()),
            Some(id.to_string()),
            plant,
        );
        self.st.ncs.insert(
            id.clone(),
            NcRecord {
                nc,
                created_at: now,
                contained_at: None,
                maintenance: Vec::new(),
                disposition: None,
                deviation: Some(deviation),
                capa: Some(capa),
                closed_at: None,
                failures_while_open: 0,
            },
        );
        Some(id)
    }

    /// A quality engineer confirms the NC's containment. 409 if unknown, closed or already
    /// contained.
    pub fn contain(&mut self, now: Instant, nc: &NcId) -> Result<Receipt, OperatorError> {
        let rec = self
            .st
            .ncs
            .get_mut(nc)
            .ok_or_else(|| OperatorError::unknown("nc", nc))?;
        if rec.contained_at.is_some() || rec.closed_at.is_some() {
            return Err(OperatorError::state(
                "nc",
                nc,
                "already contained or closed",
            ));
        }
        rec.contained_at = Some(now);
        Ok(self.ledger.post(
            now,
            Origin::Operator,
            None,
            Posting::NcContained { nc: nc.clone() },
        ))
    }

    /// The disposition of an NC is approved: posted and emitted as `DispositionApproved`; closes
    /// the CAPA and the NC if maintenance was recorded (or the NC is not asset-related). 409 if the
    /// NC is unknown or already dispositioned.
    pub fn approve_disposition(
        &mut self,
        now: Instant,
        nc: &NcId,
        decision: DispositionDecision,
        approver: &str,
    ) -> Result<Receipt, OperatorError> {
        let rec = self
            .st
            .ncs
            .get_mut(nc)
            .ok_or_else(|| OperatorError::unknown("nc", nc))?;
        if rec.disposition.is_some() {
            return Err(OperatorError::state("nc", nc, "already dispositioned"));
        }
        let d = Disposition {
            nc: nc.clone(),
            decision,
            approved_by: approver.to_owned(),
        };
        rec.disposition = Some((d.clone(), now));
        let receipt = self.ledger.post(
            now,
            Origin::Operator,
            None,
            Posting::DispositionApproved(d.clone()),
        );
        let plant = self.st.plants.get(&rec.nc.station).cloned();
        self.outbox.emit(
            EventData::DispositionApproved(d),
            Some(nc.to_string()),
            plant,
        );
        self.st.try_close(now, nc, &mut self.ledger);
        Ok(receipt)
    }

    /// Publishes the next version of an inspection spec (QMS owns them): posted and emitted as
    /// `MasterDataPublished`.
    pub fn publish_inspection_spec(
        &mut self,
        now: Instant,
        key: RecordKey,
        spec: InspectionSpec,
    ) -> MasterDataRecord {
        let plant = self.st.plants.get(&spec.station).cloned();
        self.st.master.publish(
            now,
            key,
            MasterDataPayload::InspectionSpec(spec),
            &mut self.ledger,
            &mut self.outbox,
            plant,
        )
    }

    // ---- queries ----

    /// The NC rule in force.
    pub fn rule(&self) -> NcRule {
        self.st.rule
    }

    /// An NC.
    pub fn nc(&self, id: &NcId) -> Option<&NcRecord> {
        self.st.ncs.get(id)
    }

    /// All NCs (unordered).
    pub fn ncs(&self) -> impl Iterator<Item = &NcRecord> + '_ {
        self.st.ncs.values()
    }

    /// The open NC of a station and characteristic, if any.
    pub fn open_nc(&self, station: &StationId, characteristic: &CharacteristicId) -> Option<&NcId> {
        self.st
            .tracks
            .get(station)?
            .get(characteristic)?
            .open
            .as_ref()
    }

    /// A deviation, by id (`DEV-…`).
    pub fn deviation(&self, id: &str) -> Option<&ActionRecord> {
        self.st.deviations.get(id)
    }

    /// A CAPA.
    pub fn capa(&self, id: &CapaId) -> Option<&ActionRecord> {
        self.st.capas.get(id)
    }

    /// Inspections recorded, and how many failed.
    pub fn inspection_counts(&self) -> (u64, u64) {
        (self.st.inspections, self.st.failed)
    }

    /// The version of a master-data record QMS holds (its own specs or consumed records).
    pub fn master_data(&self, kind: MasterDataKind, key: &RecordKey) -> Option<&HeldRecord> {
        self.st.master.get(kind, key)
    }
}

impl State {
    fn handle(
        &mut self,
        now: Instant,
        key: Option<&IdempotencyKey>,
        request: &Request,
        ledger: &mut Ledger,
        _outbox: &mut Outbox,
    ) -> Reply {
        match request {
            Request::RecordMaintenance {
                nc,
                work_order,
                root_cause,
            } => {
                let Some(rec) = self.ncs.get_mut(nc) else {
                    return Reply::conflict(format!("nc {nc} does not exist"));
                };
                let receipt = ledger.post(
                    now,
                    Origin::Integration,
                    key,
                    Posting::MaintenanceRecorded {
                        nc: nc.clone(),
                        work_order: work_order.clone(),
                        root_cause: root_cause.clone(),
                    },
                );
                let first = rec.maintenance.is_empty();
                rec.maintenance.push(MaintenanceFact {
                    work_order: work_order.clone(),
                    root_cause: root_cause.clone(),
                    at: now,
                    receipt,
                });
                if first && let Some(dev) = rec.deviation.clone() {
                    if let Some(d) = self.deviations.get_mut(&dev) {
                        d.closed_at = Some(now);
                    }
                    ledger.post(
                        now,
                        Origin::Operator,
                        None,
                        Posting::DeviationClosed {
                            deviation: dev,
                            nc: nc.clone(),
                        },
                    );
                }
                self.try_close(now, nc, ledger);
                Reply::created(receipt)
            }
            Request::ApplyMasterData(record) => match record.kind() {
                MasterDataKind::InspectionSpec => Reply::invalid(
                    "payload",
                    "qms owns inspection specs; it does not apply them",
                ),
                _ => {
                    let reply = self.master.apply(now, key, record, ledger);
                    if reply.status == crate::reply::CREATED
                        && let MasterDataPayload::Asset(p) = &record.payload
                    {
                        self.plants.insert(p.station.clone(), p.plant.clone());
                    }
                    reply
                }
            },
            _ => not_mine(System::Qms, request),
        }
    }

    /// Closes the CAPA and the NC once the disposition is approved and, for an asset-related NC,
    /// maintenance is recorded.
    fn try_close(&mut self, now: Instant, nc: &NcId, ledger: &mut Ledger) {
        let Some(rec) = self.ncs.get_mut(nc) else {
            return;
        };
        if rec.closed_at.is_some()
            || rec.disposition.is_none()
            || (rec.nc.asset_related && rec.maintenance.is_empty())
        {
            return;
        }
        if let Some(capa) = &rec.capa {
            if let Some(c) = self.capas.get_mut(capa) {
                c.closed_at = Some(now);
            }
            ledger.post(
                now,
                Origin::Operator,
                None,
                Posting::CapaClosed {
                    capa: capa.clone(),
                    nc: nc.clone(),
                },
            );
        }
        rec.closed_at = Some(now);
        ledger.post(
            now,
            Origin::Operator,
            None,
            Posting::NcClosed { nc: nc.clone() },
        );
        if let Some(track) = self
            .tracks
            .get_mut(&rec.nc.station)
            .and_then(|m| m.get_mut(&rec.nc.characteristic))
            && track.open.as_ref() == Some(nc)
        {
            track.open = None;
        }
    }
}
