//! The OpenAPI documents: checked in, served, complete, and internally consistent.
//!
//! `UPDATE_OPENAPI=1 cargo test -p plantloop-mocks-http --test openapi` rewrites the checked-in files.

mod support;

use plantloop_core::System;
use plantloop_mocks_http::OAuthSettings;
use plantloop_mocks_http::oauth::TOKEN_PATH;
use plantloop_mocks_http::openapi::document;
use serde_json::Value;
use std::path::PathBuf;
use support::*;

fn checked_in(system: System) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("openapi")
        .join(format!("{system}.json"))
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap() + "\n"
}

#[test]
fn documents_match_the_checked_in_files() {
    let update = std::env::var_os("UPDATE_OPENAPI").is_some_and(|v| v != "0");
    let mut drifted = vec![];
    for system in System::ALL {
        let generated = pretty(&document(system));
        let path = checked_in(system);
        if update {
            std::fs::write(&path, &generated).unwrap();
            continue;
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        if on_disk != generated {
            drifted.push(path.display().to_string());
        }
    }
    assert!(
        drifted.is_empty(),
        "OpenAPI documents drifted from the code: {drifted:?}\n\
         regenerate with: UPDATE_OPENAPI=1 cargo test -p plantloop-mocks-http --test openapi"
    );
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r.clone());
            }
            m.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[test]
fn documents_are_openapi_3_1_and_every_ref_resolves() {
    for system in System::ALL {
        let doc = document(system);
        assert_eq!(doc["openapi"], "3.1.0");
        let mut refs = vec![];
        collect_refs(&doc, &mut refs);
        assert!(!refs.is_empty());
        for r in refs {
            let pointer = r
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("{system}: external ref {r}"));
            assert!(
                doc.pointer(pointer).is_some(),
                "{system}: {r} does not resolve"
            );
        }
        let mut ids: Vec<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|item| item.as_object().unwrap().values())
            .map(|op| op["operationId"].as_str().unwrap())
            .collect();
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n, "{system}: operationIds are unique");
    }
}

/// Every documented operation is served, the token route only by a system that requires OAuth
/// (the document says so): without OAuth it is 404, with it every path answers.
#[tokio::test]
async fn every_documented_operation_is_served_and_the_document_too() {
    let plain = start(&[]).await;
    let oauth = start_with(|c| {
        for s in System::ALL {
            c.system_mut(s).oauth = Some(OAuthSettings::generated());
        }
    })
    .await;
    let c = client();
    for (m, requires_oauth) in [(&plain, false), (&oauth, true)] {
        for system in System::ALL {
            let base = m.base_url(system);
            let doc = document(system);
            let served = get(&c, format!("{base}/openapi.json")).await;
            assert_eq!(
                served.body, doc,
                "{system}: /openapi.json is the generated document"
            );
            for (path, item) in doc["paths"].as_object().unwrap() {
                for method in item.as_object().unwrap().keys() {
                    let url = format!("{base}{}", path.replace("{id}", "X-1"));
                    let a = match method.as_str() {
                        "get" => get(&c, url).await,
                        "post" => post(&c, url, Some("probe"), &serde_json::json!({})).await,
                        other => panic!("unexpected method {other}"),
                    };
                    let route_missing = a.status == 405
                        || (a.status == 404
                            && a.body["type"] == "https://plantloop.dev/problems/not-found");
                    let served = path != TOKEN_PATH || requires_oauth;
                    assert_eq!(
                        route_missing, !served,
                        "{system} (OAuth {requires_oauth}): {method} {path}: {a:?}"
                    );
                }
            }
        }
    }
    plain.shutdown().await.unwrap();
    oauth.shutdown().await.unwrap();
}
