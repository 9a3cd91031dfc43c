//! The JSON Schemas of the event types: generated from the types, checked in under `core/schemas/`,
//! and in agreement with ingress (what ingress emits validates; what the schemas can express and
//! ingress refuses, the schemas refuse too).
//!
//! `UPDATE_SCHEMAS=1 cargo test -p plantloop-core --test schemas` rewrites the checked-in files.

mod support;

use plantloop_core::event::{EventType, event_schemas, parse_event};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;
use support::*;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas")
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap() + "\n"
}

#[test]
fn schemas_match_the_checked_in_files() {
    let update = std::env::var_os("UPDATE_SCHEMAS").is_some_and(|v| v != "0");
    let generated = event_schemas();
    let names: BTreeSet<String> = generated.iter().map(|(t, _)| format!("{t}.json")).collect();
    if update {
        std::fs::create_dir_all(dir()).unwrap();
        for entry in std::fs::read_dir(dir()).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".json") && !names.contains(&name) {
                std::fs::remove_file(&path).unwrap();
            }
        }
    }
    let mut drifted = vec![];
    for (ty, schema) in &generated {
        let path = dir().join(format!("{ty}.json"));
        let text = pretty(schema);
        if update {
            std::fs::write(&path, &text).unwrap();
        } else if std::fs::read_to_string(&path).unwrap_or_default() != text {
            drifted.push(path.display().to_string());
        }
    }
    let on_disk: BTreeSet<String> = std::fs::read_dir(dir())
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".json"))
                .collect()
        })
        .unwrap_or_default();
    let stale: Vec<_> = on_disk.difference(&names).collect();
    assert!(
        drifted.is_empty() && stale.is_empty(),
        "JSON Schemas drifted from the code: changed {drifted:?}, stale {stale:?}\n\
         regenerate with: UPDATE_SCHEMAS=1 cargo test -p plantloop-core --test schemas"
    );
}

#[test]
fn there_is_a_schema_for_every_type_and_every_accepted_version() {
    let types: Vec<String> = event_schemas().into_iter().map(|(t, _)| t).collect();
    let mut expected: Vec<String> = EventType::ALL
        .iter()
        .flat_map(|t| {
            t.accepted_versions()
                .iter()
                .map(move |v| format!("com.plantloop.{}.v{v}", t.name()))
        })
        .collect();
    expected.sort();
    assert_eq!(types, expected);
    assert!(types.contains(&"com.plantloop.qms.nonconformance.created.v1".to_owned()));
}

fn validator(ty: &str) -> jsonschema::Validator {
    let schema = event_schemas()
        .into_iter()
        .find(|(t, _)| t == ty)
        .unwrap_or_else(|| panic!("no schema for {ty}"))
        .1;
    jsonschema::draft202012::new(&schema).unwrap()
}

fn errors(v: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    v.iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn every_event_the_core_emits_validates_against_its_schema() {
    let examples = one_of_each();
    let covered: BTreeSet<_> = examples.iter().map(|e| e.event_type()).collect();
    assert_eq!(
        covered.len(),
        EventType::ALL.len(),
        "an example of each type"
    );
    for e in examples {
        let ce = e.to_cloudevent();
        let v = validator(&e.event_type().type_string());
        assert_eq!(errors(&v, &ce), Vec::<String>::new(), "{ce}");
        // And the schema of another type refuses it (the `type` is pinned).
        let other = EventType::ALL
            .into_iter()
            .find(|t| *t != e.event_type())
            .unwrap();
        assert!(!validator(&other.type_string()).is_valid(&ce));
    }
}

#[test]
fn the_older_version_has_its_own_schema() {
    let v1 = validator("com.plantloop.qms.nonconformance.created.v1");
    assert_eq!(errors(&v1, &nc_v1_json()), Vec::<String>::new());
    let mut extra = nc_v1_json();
    extra["data"]["severity"] = "major".into();
    assert!(!v1.is_valid(&extra), "v1 had no severity");
    assert!(parse_event(extra.to_string().as_bytes()).is_err());
    let v2 = validator("com.plantloop.qms.nonconformance.created.v2");
    assert!(!v2.is_valid(&nc_v1_json()));
}

/// Inputs that ingress refuses for a reason a JSON Schema can state: the schema refuses them too,
/// and both point at the same place.
#[test]
fn schema_and_ingress_refuse_the_same_malformed_events() {
    let base = support::order("o-1", "O-1", 1, 100).to_cloudevent();
    let ty = base["type"].as_str().unwrap().to_owned();
    let v = validator(&ty);
    type Edit = fn(&mut Value);
    let cases: Vec<(&str, &str, Edit)> = vec![
        ("missing id", "id", |e| {
            e.as_object_mut().unwrap().remove("id");
        }),
        ("empty source", "source", |e| e["source"] = "".into()),
        ("specversion 0.3", "specversion", |e| {
            e["specversion"] = "0.3".into()
        }),
        ("latency class", "latencyclass", |e| {
            e["latencyclass"] = "urgent".into()
        }),
        ("traceparent", "traceparent", |e| {
            e["traceparent"] = "00-abc".into()
        }),
        ("plant id", "plant", |e| e["plant"] = "P 1".into()),
        ("data content type", "datacontenttype", |e| {
            e["datacontenttype"] = "text/xml".into()
        }),
        ("missing data", "data", |e| {
            e.as_object_mut().unwrap().remove("data");
        }),
        ("order id characters", "data.id", |e| {
            e["data"]["id"] = "O 1".into()
        }),
        ("order id too long", "data.id", |e| {
            e["data"]["id"] = "O".repeat(65).into()
        }),
        ("missing material", "data.material", |e| {
            e["data"].as_object_mut().unwrap().remove("material");
        }),
        ("negative serial", "data.serials.first", |e| {
            e["data"]["serials"]["first"] = (-1).into()
        }),
        ("serial not a number", "data.serials.last", |e| {
            e["data"]["serials"]["last"] = "ten".into()
        }),
    ];
    for (what, field, edit) in cases {
        let mut bad = base.clone();
        edit(&mut bad);
        assert!(!v.is_valid(&bad), "{what}: the schema accepts {bad}");
        let err = parse_event(bad.to_string().as_bytes())
            .expect_err(&format!("{what}: ingress accepts {bad}"));
        let f = err.field();
        assert!(
            field.starts_with(&f) && !f.is_empty(),
            "{what}: ingress names {f:?} ({err}), expected {field:?}"
        );
    }
    // Master data versions start at 1.
    let mut md = support::material("m-1", "M-100", 1, "housing").to_cloudevent();
    let v = validator(md["type"].as_str().unwrap());
    md["data"]["version"] = 0.into();
    assert!(!v.is_valid(&md));
    let err = parse_event(md.to_string().as_bytes()).unwrap_err();
    assert!(err.field().starts_with("data"), "{err}");
    assert!(err.to_string().contains("version"), "{err}");
}
