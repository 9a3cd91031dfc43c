//! The seed's closed loop end to end over real HTTP: the mocks on loopback ports send their
//! events to the service by webhook, the service calls them back, and the mocks' ledgers are
//! the judge (each posting exactly once).

mod support;

use plantloop_core::System;
use plantloop_mocks::Personality;
use support::*;

async fn wait_all(plant: &Plant, keys: &[(System, Vec<String>)]) {
    for (s, k) in keys {
        plant.wait_for_keys(*s, k).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nc_completion_and_disposition_each_post_exactly_once() {
    let data = tempfile::tempdir().unwrap();
    let (plant, listener) = Plant::new(data.path(), &[]).await;
    let service = plant.start(Some(listener)).await;
    let (s, _) = plant.get(format!("{}/ready", plant.service_url())).await;
    assert_eq!(s, 200);
    plant.set_up_line().await;

    // W1: the NC holds the order's suspect serials, interrupts the order, opens an emergency
    // work order and stops the station.
    let nc = plant.raise_nc().await;
    wait_all(&plant, &w1_keys(&nc)).await;
    let unit = serde_json::json!({ "serial": 50, "order": ORDER, "material": "M-1", "good": true });
    let (s, _) = plant
        .post(
            format!("{}/stations/{STATION}/units", plant.url(System::Mes)),
            unit.clone(),
        )
        .await;
    assert_eq!(s, 409, "the stopped station makes nothing");

    // W2: the completion gives QMS its maintenance facts, ERP the goods issue and both costs.
    plant.complete_work_order(&nc).await;
    wait_all(&plant, &w2_keys(&nc)).await;
    let erp = plant.postings(System::Erp).await;
    let kind = |key: &str| erp.iter().find(|(k, _)| k == key).map(|(_, p)| p.clone());
    assert_eq!(
        kind(&format!("w2/WO-{nc}/cost/parts")).as_deref(),
        Some("cost_posted")
    );
    assert_eq!(
        kind(&format!("w2/WO-{nc}/goods-issue/0")).as_deref(),
        Some("goods_moved")
    );

    // W3: the disposition releases the hold, resumes the order and the station.
    plant.approve_disposition(&nc).await;
    wait_all(&plant, &w3_keys(&nc)).await;
    let (s, _) = plant
        .post(
            format!("{}/stations/{STATION}/units", plant.url(System::Mes)),
            unit,
        )
        .await;
    assert_eq!(s, 202, "the resumed station makes units again");

    assert_each_key_posted_once(&plant).await;
    // The audit trail of the NC, with causation links, and no dead letter.
    let (s, audit) = plant
        .get(format!("{}/audit?correlation={nc}", plant.service_url()))
        .await;
    assert_eq!(s, 200);
    let records = audit["records"].as_array().unwrap();
    let keys: Vec<&str> = records.iter().filter_map(|r| r["key"].as_str()).collect();
    for k in [format!("w1/{nc}/hold"), format!("w3/{nc}/resume")] {
        assert!(keys.contains(&k.as_str()), "{k} not in {keys:?}");
    }
    assert!(
        records
            .iter()
            .all(|r| !r["causation"].as_array().unwrap().is_empty())
    );
    let (s, dl) = plant
        .get(format!("{}/dead-letters", plant.service_url()))
        .await;
    assert_eq!(s, 200);
    assert_eq!(dl["dead_letters"], serde_json::json!([]));
    assert_metrics_of_the_loop(&plant).await;
    service.stop().await.unwrap();
    plant.mocks.shutdown().await.unwrap();
}

/// `GET /metrics` after the loop: the counts the loop implies, not just the names.
async fn assert_metrics_of_the_loop(plant: &Plant) {
    let m = plant.metrics().await;
    let sum = |name: &str, labels: &[&str]| metric_sum(&m, name, labels);
    let nc = [
        "type=\"qms.nonconformance.created\"",
        "class=\"critical\"",
        "result=\"accepted\"",
    ];
    assert_eq!(sum("plantloop_events_in_total", &nc), 1.0, "{m}");
    let completed = ["type=\"cmms.workorder.completed\"", "result=\"accepted\""];
    assert_eq!(sum("plantloop_events_in_total", &completed), 1.0, "{m}");
    let order = ["type=\"erp.order.released\"", "plant=\"P1\""];
    assert_eq!(sum("plantloop_events_in_total", &order), 1.0, "{m}");
    // ERP: hold, interruption, goods issue, two costs, release, resumed order = 7 postings.
    let erp_done = sum(
        "plantloop_calls_total",
        &["target=\"erp\"", "outcome=\"done\""],
    );
    assert_eq!(erp_done, 7.0, "{m}");
    // MES: the asset's master data, the dispatch, the stop and the resume.
    let mes_done = sum(
        "plantloop_calls_total",
        &["target=\"mes\"", "outcome=\"done\""],
    );
    assert_eq!(mes_done, 4.0, "{m}");
    assert_eq!(
        sum("plantloop_calls_total", &["outcome=\"rejected\""]),
        0.0,
        "{m}"
    );
    assert_eq!(
        sum("plantloop_queue_depth", &[]),
        0.0,
        "nothing left queued: {m}"
    );
    assert_eq!(sum("plantloop_in_flight", &[]), 0.0, "{m}");
    assert_eq!(sum("plantloop_breaker_open", &[]), 0.0, "{m}");
    assert!(
        sum("plantloop_journal_sync_seconds_count", &[]) >= 5.0,
        "{m}"
    );
    // Each critical call acknowledged (hold, interruption, work order, stop) was measured from
    // its NC, under the loop's few seconds.
    let critical = ["class=\"critical\""];
    assert_eq!(
        sum("plantloop_end_to_end_seconds_count", &critical),
        4.0,
        "{m}"
    );
    let mean = sum("plantloop_end_to_end_seconds_sum", &critical) / 4.0;
    assert!(mean > 0.0 && mean < 10.0, "{mean} s: {m}");
}

/// The service stops right after the NC's containment starts and is opened again on the same
/// data folder: the restarted engine finishes W1 and runs W2 and W3, and against a legacy ERP
/// (which posts again on a repeated key) nothing is posted twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_continues_without_posting_twice() {
    let data = tempfile::tempdir().unwrap();
    let (plant, listener) = Plant::new(data.path(), &[(System::Erp, Personality::Legacy)]).await;
    let service = plant.start(Some(listener)).await;
    plant.set_up_line().await;
    let nc = plant.raise_nc().await;
    // Stop as soon as the NC's hold is being made (its calls may be in flight).
    plant
        .wait_for_keys(System::Erp, &[format!("w1/{nc}/hold")])
        .await;
    service.stop().await.unwrap();

    let service = plant.start(None).await;
    let r = service.recovery();
    assert!(
        r.snapshot_lsn.is_some() || r.replayed > 0,
        "the restart recovered from the journal: {r:?}"
    );
    wait_all(&plant, &w1_keys(&nc)).await;
    plant.complete_work_order(&nc).await;
    wait_all(&plant, &w2_keys(&nc)).await;
    service.stop().await.unwrap();

    let service = plant.start(None).await;
    plant.approve_disposition(&nc).await;
    wait_all(&plant, &w3_keys(&nc)).await;
    assert_each_key_posted_once(&plant).await;
    service.stop().await.unwrap();
    plant.mocks.shutdown().await.unwrap();
}
