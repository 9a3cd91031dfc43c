//! In-process call throughput of the mocks, as the simulator drives them (target: ≥ 2 million
//! calls/s). Each sample runs a batch of calls on fresh systems, so ledgers stay bounded.

/// The allocator of the `plantloop` binary, so that the figures are what its users get.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use plantloop_core::call::{IdempotencyKey, Request};
use plantloop_core::time::Instant;
use plantloop_core::*;
use plantloop_mocks::erp::Erp;
use plantloop_mocks::mes::{Mes, MesConfig};
use plantloop_mocks::qms::{NcRule, Qms};
use plantloop_mocks::{Personality, PostingKind};
use std::hint::black_box;

const BATCH: u64 = 10_000;

fn id<T: TryFrom<String, Error = ModelError>>(s: &str) -> T {
    T::try_from(s.to_owned()).unwrap()
}

fn order() -> ProductionOrder {
    ProductionOrder {
        id: id("PO-1"),
        material: id("ASSY-100"),
        line: id("P1-L1"),
        plant: id("P1"),
        serials: SerialRange::new(1, 10_000_000).unwrap(),
    }
}

fn keys(prefix: &str) -> Vec<IdempotencyKey> {
    (0..BATCH)
        .map(|i| IdempotencyKey(format!("W6/{prefix}-{i:08}/confirm").into()))
        .collect()
}

fn confirmations() -> Vec<Request> {
    (0..BATCH)
        .map(|i| {
            Request::ConfirmProduction(ProductionConfirmation {
                order: id("PO-1"),
                station: id("P1-L1-S6"),
                material: id("ASSY-100"),
                serials: SerialRange::new(i * 10 + 1, i * 10 + 10).unwrap(),
                good: 10,
                scrap: 0,
            })
        })
        .collect()
}

fn erp_with_holds(p: Personality) -> Erp {
    let mut e = Erp::new(p);
    e.set_rate_limit(None);
    e.release_order(Instant::ZERO, order()).unwrap();
    // A few active holds far from the confirmed serials, so every confirmation scans them.
    for h in 0..4u64 {
        let hold = Hold {
            id: id(&format!("H-{h}")),
            order: id("PO-1"),
            material: id("ASSY-100"),
            serials: SerialRange::new(9_000_000 + h * 100, 9_000_000 + h * 100 + 50).unwrap(),
            nc: id("NC-1"),
        };
        e.apply(Instant::ZERO, None, &Request::PostHold(hold));
    }
    e
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("mocks_inprocess");
    g.throughput(Throughput::Elements(BATCH));
    let keys = keys("c");
    let reqs = confirmations();

    for p in [Personality::Modern, Personality::Legacy] {
        g.bench_function(format!("erp_confirm_new_key_{}", p.as_str()), |b| {
            b.iter_batched(
                || erp_with_holds(p),
                |mut erp| {
                    for (i, (k, r)) in keys.iter().zip(&reqs).enumerate() {
                        black_box(erp.apply(Instant::from_micros(i as u64), Some(k), r));
                    }
                    assert_eq!(
                        erp.ledger().count(PostingKind::ProductionConfirmed),
                        BATCH as usize
                    );
                    erp
                },
                BatchSize::PerIteration,
            )
        });
    }

    g.bench_function("erp_repeated_key_modern", |b| {
        b.iter_batched(
            || {
                let mut erp = erp_with_holds(Personality::Modern);
                erp.apply(Instant::ZERO, Some(&keys[0]), &reqs[0]);
                erp
            },
            |mut erp| {
                for i in 0..BATCH {
                    black_box(erp.apply(Instant::from_micros(i), Some(&keys[0]), &reqs[0]));
                }
                erp
            },
            BatchSize::PerIteration,
        )
    });

    g.bench_function("erp_lookup_legacy", |b| {
        let lookups: Vec<Request> = keys
            .iter()
            .map(|k| Request::LookupPosting { key: k.clone() })
            .collect();
        b.iter_batched(
            || erp_with_holds(Personality::Legacy),
            |mut erp| {
                for (i, r) in lookups.iter().enumerate() {
                    black_box(erp.apply(Instant::from_micros(i as u64), None, r));
                }
                erp
            },
            BatchSize::PerIteration,
        )
    });

    g.bench_function("mes_stop_resume_modern", |b| {
        let stations: Vec<StationId> = (1..=6).map(|i| id(&format!("P1-L1-S{i}"))).collect();
        let reqs: Vec<Request> = (0..BATCH)
            .map(|i| {
                let action = if i % 3 == 0 {
                    LineAction::Resume
                } else {
                    LineAction::Stop
                };
                Request::ControlStation(LineControl {
                    station: stations[(i % 6) as usize].clone(),
                    action,
                    reason: "bench".into(),
                    nc: None,
                })
            })
            .collect();
        b.iter_batched(
            || {
                let mut m = Mes::new(
                    Personality::Modern,
                    id("P1"),
                    MesConfig::default(),
                    stations.clone(),
                );
                m.set_rate_limit(None);
                m
            },
            |mut mes| {
                for (i, (k, r)) in keys.iter().zip(&reqs).enumerate() {
                    black_box(mes.apply(Instant::from_micros(i as u64), Some(k), r));
                }
                mes
            },
            BatchSize::PerIteration,
        )
    });

    g.bench_function("mes_unit_completed", |b| {
        let s6: StationId = id("P1-L1-S6");
        let (po, mat): (OrderId, MaterialId) = (id("PO-1"), id("ASSY-100"));
        b.iter_batched(
            || {
                Mes::new(
                    Personality::Modern,
                    id("P1"),
                    MesConfig { batch_size: 50 },
                    [s6.clone()],
                )
            },
            |mut mes| {
                for i in 0..BATCH {
                    mes.unit_completed(Instant::from_micros(i), &s6, i + 1, &po, &mat, true)
                        .unwrap();
                }
                while black_box(mes.poll_event()).is_some() {}
                mes
            },
            BatchSize::PerIteration,
        )
    });

    g.bench_function("qms_record_inspection", |b| {
        let results: Vec<InspectionResult> = (0..BATCH)
            .map(|i| InspectionResult {
                id: id(&format!("I-{i}")),
                station: id(&format!("P1-L1-S{}", i % 6 + 1)),
                serial: i,
                characteristic: id("torque"),
                passed: i % 50 != 0,
            })
            .collect();
        b.iter_batched(
            || Qms::new(Personality::Modern, NcRule::default()),
            |mut qms| {
                for (i, r) in results.iter().enumerate() {
                    black_box(qms.record_inspection(Instant::from_secs(i as u64), r));
                }
                qms
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
