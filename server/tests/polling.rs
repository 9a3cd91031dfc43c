//! Polling: systems that only offer an event feed (`GET /events?after=`) are read on an interval
//! with a cursor kept in the data folder. Across restarts between polls no event is skipped and
//! none is applied twice, also when the cursor was lost after its events were journaled; the
//! audit trail names the poller (`poll:<system>`) as who delivered what it read.

mod support;

use plantloop_core::System;
use plantloop_mocks::Personality;
use plantloop_server::polling::{cursor_path, load_cursor};
use support::*;

async fn feed_end(plant: &Plant, s: System) -> u64 {
    let (status, page) = plant.get(format!("{}/events?after=0", plant.url(s))).await;
    assert_eq!(status, 200, "{page}");
    page["next"].as_u64().unwrap()
}

/// Waits until the service's cursor for `s` has reached the end of its feed.
async fn wait_cursor_at_end(plant: &Plant, s: System) {
    for _ in 0..500 {
        let end = feed_end(plant, s).await;
        if load_cursor(&plant.config.data, s, &plant.url(s)) == end {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{s}: the cursor never reached the feed's end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_between_polls_skip_nothing_and_apply_nothing_twice() {
    let data = tempfile::tempdir().unwrap();
    // A legacy ERP posts again on a repeated key: an event applied twice would show.
    let (plant, listener) =
        Plant::with(data.path(), &[(System::Erp, Personality::Legacy)], true).await;
    let service = plant.start(Some(listener)).await;
    plant.set_up_line().await;
    let nc = plant.raise_nc().await;
    for (s, keys) in w1_keys(&nc) {
        plant.wait_for_keys(s, &keys).await;
    }
    wait_cursor_at_end(&plant, System::Qms).await;
    // The audit trail names the poller as who delivered the NC it read from QMS's feed.
    let (status, audit) = plant
        .get(format!("{}/audit?correlation={nc}", plant.service_url()))
        .await;
    assert_eq!(status, 200, "{audit}");
    let first = &audit["records"][0];
    let origin = first["delivered_by"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["source"] == first["origin"]["source"] && d["id"] == first["origin"]["id"])
        .unwrap_or_else(|| panic!("no origin in {first}"));
    assert_eq!(origin["principal"], "poll:qms", "{first}");
    service.stop().await.unwrap();

    // While the service is down the technician completes the work order: the events wait in
    // CMMS's feed, after the cursor.
    plant.complete_work_order(&nc).await;
    let service = plant.start(None).await;
    for (s, keys) in w2_keys(&nc) {
        plant.wait_for_keys(s, &keys).await;
    }
    wait_cursor_at_end(&plant, System::Cmms).await;
    service.stop().await.unwrap();

    // A crash after the sync but before the cursor's write: every cursor is lost, so everything
    // is read again from the start. The engine's dedupe answers it all as duplicates.
    for s in System::ALL {
        let _ = std::fs::remove_file(cursor_path(&plant.config.data, s));
    }
    plant.approve_disposition(&nc).await;
    let service = plant.start(None).await;
    for (s, keys) in w3_keys(&nc) {
        plant.wait_for_keys(s, &keys).await;
    }
    for s in System::ALL {
        wait_cursor_at_end(&plant, s).await;
    }
    let (status, metrics) = plant.get(format!("{}/metrics", plant.service_url())).await;
    assert_eq!(status, 200);
    let metrics = metrics.as_str().unwrap().to_owned();
    let duplicates: f64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("plantloop_events_in_total{") && l.contains("result=\"duplicate\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        duplicates >= 5.0,
        "the re-read events were duplicates: {metrics}"
    );
    assert_each_key_posted_once(&plant).await;
    service.stop().await.unwrap();
    plant.mocks.shutdown().await.unwrap();
}
