//! Ingress: CloudEvents JSON in, validated and upcast events out. Every refusal is a typed error
//! naming the attribute or field at fault; nothing panics, whatever the bytes; a refused input
//! leaves the engine as it was.

mod support;

use plantloop_core::engine::{Ack, Config, Engine, Input};
use plantloop_core::event::{
    COMPLETION_LINES_MAX, EVENT_BYTES_MAX, EventData, IngressError, parse_event, parse_event_value,
};
use plantloop_core::*;
use proptest::prelude::*;
use serde_json::{Value, json};
use support::*;

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

#[test]
fn every_event_type_round_trips_through_its_cloudevent() {
    for e in one_of_each() {
        let json = e.to_cloudevent();
        assert_eq!(json["specversion"], "1.0");
        assert_eq!(json["type"], e.event_type().type_string().as_str());
        assert_eq!(json["latencyclass"], e.class.as_str());
        assert_eq!(json["correlationid"], e.correlation.as_deref().unwrap());
        assert_eq!(parse_event(&e.to_json_bytes()), Ok(e.clone()), "{json}");
    }
}

#[test]
fn the_type_carries_the_schema_version() {
    let e = nc("nc-1", "NC-1", S1, 1, 2);
    assert_eq!(
        e.to_cloudevent()["type"],
        "com.plantloop.qms.nonconformance.created.v2"
    );
    assert_eq!(
        order("o", "O-1", 1, 2).to_cloudevent()["type"],
        "com.plantloop.erp.order.released.v1"
    );
}

fn nc_v1(first: u64, last: u64) -> Value {
    json!({
        "specversion": "1.0",
        "id": "nc-v1",
        "source": "/plants/P1/qms",
        "type": "com.plantloop.qms.nonconformance.created.v1",
        "correlationid": "NC-7",
        "data": {
            "id": "NC-7", "station": "P1-L1-S1", "characteristic": "torque",
            "first_serial": first, "last_serial": last, "failures": 3
        }
    })
}

#[test]
fn a_v1_nonconformance_is_upcast_at_ingress() {
    let e = parse_event(&bytes(&nc_v1(12, 15))).unwrap();
    assert_eq!(e.correlation.as_deref(), Some("NC-7"));
    assert_eq!(e.class, LatencyClass::Critical);
    let EventData::NonconformanceCreated(nc) = &e.data else {
        panic!("{e:?}")
    };
    assert_eq!(nc.id.as_str(), "NC-7");
    assert_eq!(nc.serials, SerialRange::new(12, 15).unwrap());
    // v1 knew only station patterns, all of them major.
    assert!(nc.asset_related);
    assert_eq!(nc.severity, Severity::Major);
    // Re-emitted, it is the current version.
    assert_eq!(
        e.to_cloudevent()["type"],
        "com.plantloop.qms.nonconformance.created.v2"
    );
    assert_eq!(parse_event(&e.to_json_bytes()).unwrap(), e);

    // The upcast event drives containment like a v2 one.
    let mut w = World::new(Config::default(), 1);
    w.send(asset("md-1", S1, 1));
    w.send(order("o-1", "O-1", 1, 100));
    w.send(e);
    w.settle();
    assert!(w.erp().find("w1/NC-7/hold").is_some());
    assert!(w.mes().find("w1/NC-7/stop").is_some());

    // v1's own rules still hold, and name v1's field.
    let err = parse_event(&bytes(&nc_v1(15, 12))).unwrap_err();
    assert_eq!(err.field(), "data.first_serial", "{err}");
    let mut extra = nc_v1(1, 2);
    extra["data"]["asset_related"] = true.into();
    let err = parse_event(&bytes(&extra)).unwrap_err();
    assert!(err.to_string().contains("asset_related"), "{err}");
}

fn valid() -> Value {
    confirmation("c-1", "O-1", S1, 1, 10).to_cloudevent()
}

fn refused(v: &Value) -> IngressError {
    parse_event(&bytes(v)).expect_err(&format!("accepted {v}"))
}

#[test]
fn bad_input_is_a_typed_error_naming_the_field() {
    // Not JSON, not an object, too large.
    let err = parse_event(b"{\"specversion\": \"1.0\",\n \"id\": }").unwrap_err();
    assert!(
        matches!(err, IngressError::MalformedJson { line: 2, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("line 2"), "{err}");
    assert_eq!(parse_event(b"[1, 2]"), Err(IngressError::NotAnObject));
    let big = vec![b' '; EVENT_BYTES_MAX + 1];
    assert_eq!(
        parse_event(&big),
        Err(IngressError::TooLarge(EVENT_BYTES_MAX + 1))
    );

    type Edit = Box<dyn Fn(&mut Value)>;
    let set = |k: &'static str, v: Value| -> Edit { Box::new(move |e| e[k] = v.clone()) };
    let del = |k: &'static str| -> Edit {
        Box::new(move |e| {
            e.as_object_mut().unwrap().remove(k);
        })
    };
    let data = |k: &'static str, v: Value| -> Edit { Box::new(move |e| e["data"][k] = v.clone()) };
    let cases: Vec<(Edit, &str, &str)> = vec![
        (del("id"), "id", "missing required attribute `id`"),
        (set("id", json!(null)), "id", "missing"),
        (set("id", json!("")), "id", "must not be empty"),
        (set("id", json!(7)), "id", "must be a string"),
        (del("source"), "source", "missing"),
        (set("source", json!("x".repeat(513))), "source", "512"),
        (del("specversion"), "specversion", "missing"),
        (set("specversion", json!("0.3")), "specversion", "\"0.3\""),
        (del("type"), "type", "missing"),
        (
            set("type", json!("com.plantloop.mes.production.exploded.v1")),
            "type",
            "unknown event type",
        ),
        (set("type", json!("com.acme.order.v1")), "type", "unknown"),
        (
            set("type", json!("com.plantloop.mes.production.confirmed")),
            "type",
            "unknown",
        ),
        (
            set("type", json!("com.plantloop.mes.production.confirmed.v9")),
            "type",
            "v9 is not supported (accepted: v1)",
        ),
        (
            set("type", json!("com.plantloop.qms.nonconformance.created.v3")),
            "type",
            "accepted: v1, v2",
        ),
        (
            set("datacontenttype", json!("application/xml")),
            "datacontenttype",
            "not application/json",
        ),
        (set("time", json!("yesterday")), "time", "RFC 3339"),
        (
            set("time", json!("2026-13-01T00:00:00Z")),
            "time",
            "RFC 3339",
        ),
        (
            set("time", json!("2026-03-01T06:00:00")),
            "time",
            "RFC 3339",
        ),
        (set("traceparent", json!("00-xyz")), "traceparent", "W3C"),
        (set("plant", json!("P 1")), "plant", "not allowed"),
        (
            set("latencyclass", json!("urgent")),
            "latencyclass",
            "critical, transactional or bulk",
        ),
        (del("data"), "data", "missing"),
        (set("data", json!("text")), "data", "must be a JSON object"),
        (set("data", json!(["O-1"])), "data", "must be a JSON object"),
        (data("order", json!("O 1")), "data.order", "not allowed"),
        (
            data("station", json!("")),
            "data.station",
            "must not be empty",
        ),
        (data("good", json!(-1)), "data.good", "invalid value"),
        (data("good", json!("ten")), "data.good", "invalid type"),
        (
            data("serials", json!({"first": 9, "last": 3})),
            "data.serials",
            "first 9 is after last 3",
        ),
        (
            data("serials", json!({"first": 1})),
            "data.serials.last",
            "missing field",
        ),
        (
            data("good", json!(11)),
            "data.good",
            "more than the 10 serials",
        ),
        (
            Box::new(|e| {
                e["data"].as_object_mut().unwrap().remove("material");
            }),
            "data.material",
            "missing field `material`",
        ),
    ];
    for (edit, field, message) in cases {
        let mut v = valid();
        edit(&mut v);
        let err = refused(&v);
        assert_eq!(err.field(), field, "{err} for {v}");
        assert!(
            err.to_string().contains(message),
            "{err:?} should say {message:?}"
        );
        assert!(
            err.to_string().contains(field) || matches!(err, IngressError::UnknownType(_)),
            "the message names {field}: {err}"
        );
    }
}

#[test]
fn accepted_times_are_rfc_3339() {
    for t in [
        "2026-03-01T06:00:00Z",
        "2026-03-01T06:00:00.123456+01:00",
        "2026-12-31t23:59:60-08:30",
    ] {
        let mut v = valid();
        v["time"] = t.into();
        assert!(parse_event(&bytes(&v)).is_ok(), "{t}");
    }
}

#[test]
fn cross_field_rules_are_checked_at_ingress() {
    let cases: Vec<(Value, &str)> = vec![
        (
            {
                let mut v = completed(
                    "w",
                    "WO-1",
                    S1,
                    None,
                    vec![part("P", 2, i64::MAX / 2 + 1)],
                    vec![],
                )
                .to_cloudevent();
                v["id"] = "w".into();
                v
            },
            "data.parts[0].unit_cost",
        ),
        (
            completed("w", "WO-1", S1, None, vec![part("P", 0, 100)], vec![]).to_cloudevent(),
            "data.parts[0].quantity",
        ),
        (
            completed("w", "WO-1", S1, None, vec![part("P", 1, -100)], vec![]).to_cloudevent(),
            "data.parts[0].unit_cost",
        ),
        (
            completed(
                "w",
                "WO-1",
                S1,
                None,
                vec![],
                vec![labour("T1", 30, 100), labour("T2", u32::MAX, i64::MAX)],
            )
            .to_cloudevent(),
            "data.labour[1].rate_per_hour",
        ),
        (
            completed(
                "w",
                "WO-1",
                S1,
                None,
                vec![part("P", 1, 1); COMPLETION_LINES_MAX + 1],
                vec![],
            )
            .to_cloudevent(),
            "data.parts",
        ),
    ];
    for (v, field) in cases {
        assert_eq!(refused(&v).field(), field, "{v}");
    }
    let mut down = one_of_each()
        .into_iter()
        .find(|e| matches!(e.data, EventData::DowntimeClassified(_)))
        .unwrap()
        .to_cloudevent();
    down["data"]["ended_at"] = 1.into();
    assert_eq!(refused(&down).field(), "data.ended_at");
    let mut spec = one_of_each()
        .into_iter()
        .find(|e| e.id == "ex-md-spec")
        .unwrap()
        .to_cloudevent();
    spec["data"]["payload"]["inspection-spec"]["upper_milli"] = 0.into();
    assert_eq!(
        refused(&spec).field(),
        "data.payload.inspection-spec.upper_milli"
    );
    spec["data"]["version"] = 0.into();
    let err = refused(&spec);
    assert!(err.to_string().contains("version"), "{err}");
}

#[test]
fn optional_attributes_may_be_null_and_unknown_extensions_pass() {
    let mut v = valid();
    v["subject"] = Value::Null;
    v["time"] = Value::Null;
    v["acmeextension"] = "kept out of the model".into();
    let e = parse_event(&bytes(&v)).unwrap();
    assert_eq!(e.subject, None);
    assert_eq!(e.class, LatencyClass::Transactional);
    v["latencyclass"] = "critical".into();
    assert_eq!(
        parse_event(&bytes(&v)).unwrap().class,
        LatencyClass::Critical
    );
}

// ---- never a panic ------------------------------------------------------------------------------

/// An engine that knows station S1 and order O-1, so that parsed events reach the workflows.
fn primed_engine() -> Engine {
    let mut e = Engine::new(Config::default(), 3);
    for ev in [asset("md-1", S1, 1), order("o-1", "O-1", 1, 1_000)] {
        assert_eq!(e.handle(Instant::ZERO, Input::Event(ev)), Ack::Accepted);
    }
    while e.poll_command().is_some() {}
    e
}

/// Paths (`a.b[2].c`) of every value in a JSON document, with the value.
fn leaves(v: &Value, path: String, out: &mut Vec<String>) {
    out.push(path.clone());
    let join = |k: &str| {
        if path.is_empty() {
            k.to_owned()
        } else {
            format!("{path}.{k}")
        }
    };
    match v {
        Value::Object(m) => m.iter().for_each(|(k, x)| leaves(x, join(k), out)),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, x)| leaves(x, format!("{path}[{i}]"), out)),
        _ => {}
    }
}

fn get_mut<'a>(v: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    let mut cur = v;
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        let (key, idx) = match seg.split_once('[') {
            Some((k, rest)) => (k, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (seg, None),
        };
        cur = cur.get_mut(key)?;
        if let Some(i) = idx {
            cur = cur.get_mut(i)?;
        }
    }
    Some(cur)
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        Just(json!(u64::MAX)),
        Just(json!(-1)),
        Just(json!(0)),
        "[ -~]{0,12}".prop_map(Value::from),
        "[A-Za-z0-9._:/-]{1,70}".prop_map(Value::from),
        Just(json!("x".repeat(600))),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[derive(Clone, Debug)]
enum Mutation {
    Replace(Value),
    Remove,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => any_json().prop_map(Mutation::Replace),
        1 => Just(Mutation::Remove),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// Whatever the bytes, ingress answers with an event or an error, and the engine takes any
    /// event it answers with.
    #[test]
    fn arbitrary_bytes_never_panic(raw in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(e) = parse_event(&raw) {
            primed_engine().handle(Instant::from_secs(1), Input::Event(e));
        }
    }

    /// Valid JSON text with bytes spliced in: mostly malformed JSON, which must say where.
    #[test]
    fn spliced_bytes_never_panic(
        which in 0..12usize,
        at in any::<prop::sample::Index>(),
        splice in prop::collection::vec(any::<u8>(), 0..8),
        cut in any::<bool>(),
    ) {
        let mut raw = one_of_each()[which].to_json_bytes();
        let i = at.index(raw.len());
        if cut {
            raw.truncate(i);
        }
        raw.splice(i..i, splice);
        match parse_event(&raw) {
            Ok(e) => {
                primed_engine().handle(Instant::from_secs(1), Input::Event(e));
            }
            Err(IngressError::MalformedJson { line, column, .. }) => {
                prop_assert!(line >= 1);
                prop_assert!(line > 1 || column <= raw.len() + 1);
            }
            Err(_) => {}
        }
    }

    /// A valid event with one value replaced or removed, anywhere in the document: either still
    /// valid (and the engine takes it), or refused with an error naming that place (or a field
    /// inside or around it).
    #[test]
    fn a_mutated_event_is_refused_naming_the_field_or_accepted(
        which in 0..12usize,
        pick in any::<prop::sample::Index>(),
        m in mutation(),
    ) {
        let mut v = one_of_each()[which].to_cloudevent();
        let original = v.clone();
        let mut paths = vec![];
        leaves(&v, String::new(), &mut paths);
        paths.retain(|p| !p.is_empty());
        let path = paths[pick.index(paths.len())].clone();
        match &m {
            Mutation::Replace(x) => *get_mut(&mut v, &path).unwrap() = x.clone(),
            Mutation::Remove => {
                let (parent, last) = match path.rsplit_once('.') {
                    Some((p, l)) => (p, l),
                    None => ("", path.as_str()),
                };
                let parent = get_mut(&mut v, parent).unwrap();
                if let Some(i) = last.rfind('[') {
                    // An array element: remove it from its array.
                    let idx: usize = last[i + 1..].trim_end_matches(']').parse().unwrap();
                    if let Some(a) = parent.get_mut(&last[..i]).and_then(Value::as_array_mut) {
                        a.remove(idx);
                    }
                } else if let Some(o) = parent.as_object_mut() {
                    o.remove(last);
                }
            }
        }
        match parse_event_value(v.clone()) {
            Ok(e) => {
                let ack = primed_engine().handle(Instant::from_secs(1), Input::Event(e));
                prop_assert!(matches!(ack, Ack::Accepted | Ack::Duplicate), "{ack:?}");
            }
            Err(err) => {
                let field = err.field();
                prop_assert!(!field.is_empty(), "{err} names no field for {v}");
                // The field named and the place mutated are on one path from the root (the
                // named one may be the parent, e.g. a range whose ends no longer ascend, or a
                // child, e.g. a required field of a replaced object). `type` decides how `data`
                // is read, so a bad `type` may be named for a mutation anywhere in `data`.
                let norm = |p: &str| p.replace('[', ".[");
                let (f, p) = (norm(&field), norm(&path));
                // A rule across fields of one record (good + scrap against the serials, an end
                // before its start) names one of them: a sibling of the mutated place.
                let parent = |x: &str| x.rsplit_once('.').map_or(String::new(), |(a, _)| a.to_owned());
                // A field named below or beside the mutated place must be one the valid event has.
                let real = get_mut(&mut original.clone(), &field).is_some();
                let related = p == f
                    || p.starts_with(&format!("{f}."))
                    // (or an element of an array given where a record belongs: serde reads
                    // records from arrays by position)
                    || ((real || f.starts_with(&format!("{p}.["))) && f.starts_with(&format!("{p}.")))
                    || (real && f.starts_with("data.") && p.starts_with(&format!("{}.", parent(&f))));
                prop_assert!(related, "mutated {path}, error names {field}: {err}");
            }
        }
    }
}

#[test]
fn a_refused_input_leaves_the_engine_as_it_was() {
    // Ingress is a pure function: a refusal never reaches the engine, and what was accepted
    // before still lands.
    let mut w = World::new(Config::default(), 1);
    w.send(asset("md-1", S1, 1));
    w.send(order("o-1", "O-1", 1, 100));
    w.settle();
    let good = confirmation("c-1", "O-1", S1, 1, 10);
    let mut bad = good.to_cloudevent();
    bad["data"]["serials"]["first"] = 99.into();
    assert!(parse_event(&bytes(&bad)).is_err());
    assert_eq!(
        w.input(Input::Event(parse_event(&good.to_json_bytes()).unwrap())),
        Some(Ack::Accepted)
    );
    w.settle();
    assert_eq!(w.erp().keys(), ["w6/O-1/P1-L1-S1/1..=10"]);
}
