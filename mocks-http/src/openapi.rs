//! OpenAPI 3.1 documents, generated from the route tables and the model's JSON Schemas.
//!
//! Why not `utoipa`: it wants its own `ToSchema` derive on every body type, and the body types are
//! the canonical model in `plantloop-core`, which derives schemars' `JsonSchema` (and must stay free
//! of HTTP concerns). OpenAPI 3.1 uses JSON Schema 2020-12 as is, so schemars' output goes into
//! `components/schemas` unchanged and the paths object is built here from [`ROUTES`] and
//! [`OPERATOR_ROUTES`], the same tables the routers are built from.
//!
//! The token route of OAuth 2.0 client credentials (`POST /oauth/token`, [`crate::oauth`]) and its
//! security scheme are in every document: a system serves the route, and requires its tokens on
//! the integration routes, only when told to (`plantloop mocks --auth`), so the integration
//! operations list no security requirement *or* the scheme.
//!
//! The documents are checked in under `mocks-http/openapi/<system>.json`; a test fails when they
//! drift from the code (`UPDATE_OPENAPI=1 cargo test -p plantloop-mocks-http` rewrites them).

use crate::operator::{OPERATOR_ROUTES, OperatorRoute};
use crate::problem::Problem;
use crate::routes::{Capability, LookupResult, PostingReceipt, ROUTES, RouteSpec};
use plantloop_core::System;
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value, json};

/// A schema of `T`, registering its definitions in the generator.
pub(crate) fn schema_of<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

fn problem_response(g: &mut SchemaGenerator, description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/problem+json": { "schema": schema_of::<Problem>(g) } }
    })
}

fn json_response(description: &str, schema: Schema) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

fn id_parameter(what: &str) -> Value {
    json!({
        "name": "id",
        "in": "path",
        "required": true,
        "description": format!("The {what}'s id (percent-encode `/`)."),
        "schema": { "type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9._:/-]+$" }
    })
}

fn idempotency_parameter() -> Value {
    json!({ "$ref": "#/components/parameters/IdempotencyKey" })
}

fn capability_operation(spec: &RouteSpec, g: &mut SchemaGenerator) -> Value {
    let mut op = Map::new();
    op.insert("operationId".into(), spec.operation_id.into());
    op.insert("summary".into(), spec.summary.into());
    op.insert("tags".into(), json!(["integration"]));
    let mut params = vec![];
    if spec.path.contains("{id}") {
        let what = match spec.capability {
            Capability::ReleaseHold => "hold",
            Capability::SetOrderStatus => "production order",
            Capability::StopStation | Capability::ResumeStation => "station",
            Capability::RecordMaintenance => "nonconformance",
            _ => "object",
        };
        params.push(id_parameter(what));
    }
    let mut responses = Map::new();
    if spec.capability == Capability::LookupPosting {
        params.push(json!({
            "name": "reference",
            "in": "query",
            "required": true,
            "description": "The external reference (idempotency key) the posting was made with.",
            "schema": { "type": "string", "minLength": 1 }
        }));
        responses.insert(
            "200".into(),
            json_response(
                "The receipt of the posting with this reference, or null.",
                schema_of::<LookupResult>(g),
            ),
        );
    } else {
        params.push(idempotency_parameter());
        responses.insert(
            "201".into(),
            json_response(
                "Posted. A modern or SaaS system answers a repeated Idempotency-Key with its first successful reply and posts nothing; a refused request is not remembered.",
                schema_of::<PostingReceipt>(g),
            ),
        );
        responses.insert(
            "200".into(),
            json_response(
                "Nothing posted: the state already is what was asked (the receipt of the posting that made it).",
                schema_of::<PostingReceipt>(g),
            ),
        );
    }
    op.insert("parameters".into(), Value::Array(params));
    op.insert("security".into(), json!([{}, { OAUTH_SCHEME: [] }]));
    if let Some(schema) = spec.capability.body_schema(g) {
        op.insert(
            "requestBody".into(),
            json!({ "required": true, "content": { "application/json": { "schema": schema } } }),
        );
    }
    for (status, description) in [
        ("400", "Malformed JSON."),
        (
            "401",
            "The system requires OAuth 2.0 and the bearer token is missing, unknown or expired.",
        ),
        ("404", "No such route, or a request for another system."),
        ("409", "The request contradicts the system's state."),
        ("413", "The body is too large."),
        ("415", "The body is not JSON."),
        (
            "422",
            "The body breaks the schema or a rule; `field` names the culprit.",
        ),
        ("429", "Rate limited; see Retry-After."),
        ("503", "The system cannot serve now."),
    ] {
        if spec.capability == Capability::LookupPosting && matches!(status, "409" | "413" | "415") {
            continue;
        }
        responses.insert(status.into(), problem_response(g, description));
    }
    op.insert("responses".into(), Value::Object(responses));
    Value::Object(op)
}

fn operator_operation(route: &OperatorRoute, g: &mut SchemaGenerator) -> Value {
    let mut op = Map::new();
    op.insert("operationId".into(), route.operation_id.into());
    op.insert("summary".into(), route.summary.into());
    op.insert("tags".into(), json!(["operator"]));
    if route.path.contains("{id}") {
        op.insert("parameters".into(), json!([id_parameter(route.id_of)]));
    }
    if let Some(body) = route.body {
        op.insert(
            "requestBody".into(),
            json!({ "required": true, "content": { "application/json": { "schema": body(g) } } }),
        );
    }
    let mut responses = Map::new();
    responses.insert(
        route.status.to_string(),
        json_response("Done.", (route.response)(g)),
    );
    for (status, description) in [
        ("400", "Malformed JSON."),
        ("409", "The action contradicts the system's state."),
        ("413", "The body is too large."),
        (
            "422",
            "The body breaks the schema or a rule; `field` names the culprit.",
        ),
    ] {
        if route.body.is_none() && matches!(status, "400" | "413") {
            continue;
        }
        responses.insert(status.into(), problem_response(g, description));
    }
    op.insert("responses".into(), Value::Object(responses));
    Value::Object(op)
}

/// The name of the OAuth 2.0 client-credentials scheme in `components.securitySchemes`.
const OAUTH_SCHEME: &str = "clientCredentials";
/// The name of the token route's HTTP Basic client authentication in `securitySchemes`.
const CLIENT_BASIC_SCHEME: &str = "clientBasic";

fn oauth_error_response(description: &str) -> Value {
    json_response(
        description,
        json!({
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": { "enum": ["invalid_request", "invalid_client", "unsupported_grant_type"] },
                "error_description": { "type": "string" }
            }
        })
        .try_into()
        .expect("an object is a schema"),
    )
}

/// `POST /oauth/token` (RFC 6749 §4.4).
fn token_operation() -> Value {
    json!({
        "operationId": "issueToken",
        "summary": "Issue an access token for client credentials (RFC 6749 §4.4). Served only when the system requires OAuth 2.0 (`plantloop mocks --auth`); 404 otherwise.",
        "tags": ["auth"],
        "security": [{ CLIENT_BASIC_SCHEME: [] }, {}],
        "requestBody": {
            "required": true,
            "content": { "application/x-www-form-urlencoded": { "schema": {
                "type": "object",
                "required": ["grant_type"],
                "properties": {
                    "grant_type": { "const": "client_credentials" },
                    "client_id": { "type": "string" },
                    "client_secret": { "type": "string" },
                    "scope": { "type": "string" }
                }
            } } }
        },
        "responses": {
            "200": json_response("The token (`Cache-Control: no-store`).", json!({
                "type": "object",
                "required": ["access_token", "token_type", "expires_in"],
                "properties": {
                    "access_token": { "type": "string" },
                    "token_type": { "const": "Bearer" },
                    "expires_in": { "type": "integer", "minimum": 1 }
                }
            }).try_into().expect("an object is a schema")),
            "400": oauth_error_response("`invalid_request` (not a form, no grant_type) or `unsupported_grant_type`."),
            "401": oauth_error_response("`invalid_client`: an unknown client or a wrong secret (`WWW-Authenticate: Basic`).")
        }
    })
}

fn checker_paths(
    system: System,
    g: &mut SchemaGenerator,
) -> Vec<(&'static str, &'static str, Value)> {
    let after = |what: &str| {
        json!([{
            "name": "after",
            "in": "query",
            "required": false,
            "description": format!("Only {what} after this sequence number."),
            "schema": { "type": "integer", "minimum": 0 }
        }])
    };
    let mut out = vec![
        (
            "/ledger",
            "get",
            json!({
                "operationId": "getLedger",
                "summary": "Every posting this system accepted, in order (for checkers).",
                "tags": ["checker"],
                "parameters": after("entries"),
                "responses": {
                    "200": json_response("The ledger.", json!({
                        "type": "object",
                        "required": ["system", "personality", "entries"],
                        "properties": {
                            "system": { "const": system.as_str() },
                            "personality": { "enum": ["modern", "legacy", "saas"] },
                            "entries": { "type": "array", "items": { "type": "object", "required": ["seq", "at", "origin", "receipt", "posting"] } }
                        }
                    }).try_into().expect("an object is a schema")),
                    "422": problem_response(g, "`after` is not a number.")
                }
            }),
        ),
        (
            "/events",
            "get",
            json!({
                "operationId": "getEvents",
                "summary": "The pull feed of outbound CloudEvents (404 for a webhook-only system).",
                "tags": ["checker"],
                "parameters": after("events"),
                "responses": {
                    "200": json_response("Up to 500 events; pass `next` as `after` for more.", json!({
                        "type": "object",
                        "required": ["next", "events"],
                        "properties": {
                            "next": { "type": "integer", "minimum": 0 },
                            "events": { "type": "array", "items": { "type": "object", "description": "A CloudEvents 1.0 JSON event." } }
                        }
                    }).try_into().expect("an object is a schema")),
                    "404": problem_response(g, "This system sends events by webhook only."),
                    "410": problem_response(g, "The events after `after` are no longer kept.")
                }
            }),
        ),
        (
            "/health",
            "get",
            json!({
                "operationId": "getHealth",
                "summary": "The system, its personality and `up`.",
                "tags": ["checker"],
                "responses": { "200": { "description": "Up." } }
            }),
        ),
        (
            "/openapi.json",
            "get",
            json!({
                "operationId": "getOpenApi",
                "summary": "This document.",
                "tags": ["checker"],
                "responses": { "200": { "description": "The OpenAPI 3.1 document." } }
            }),
        ),
    ];
    out.sort_by_key(|(p, _, _)| *p);
    out
}

/// The OpenAPI 3.1 document of one system's HTTP API.
pub fn document(system: System) -> Value {
    let mut settings = SchemaSettings::draft2020_12().for_deserialize();
    settings.definitions_path = "/components/schemas".into();
    settings.meta_schema = None;
    let mut g = settings.into_generator();

    let mut paths: Map<String, Value> = Map::new();
    let mut add = |path: &str, method: &str, op: Value| {
        let item = paths
            .entry(path.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        item.as_object_mut()
            .expect("path items are objects")
            .insert(method.to_owned(), op);
    };
    for spec in ROUTES.iter().filter(|r| r.systems.contains(&system)) {
        add(
            spec.path,
            &spec.method.to_ascii_lowercase(),
            capability_operation(spec, &mut g),
        );
    }
    for route in OPERATOR_ROUTES.iter().filter(|r| r.system == system) {
        add(
            route.path,
            &route.method.to_ascii_lowercase(),
            operator_operation(route, &mut g),
        );
    }
    for (path, method, op) in checker_paths(system, &mut g) {
        add(path, method, op);
    }
    add(crate::oauth::TOKEN_PATH, "post", token_operation());
    let paths: Map<String, Value> = {
        let mut v: Vec<(String, Value)> = paths.into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.into_iter().collect()
    };
    let mut schemas: Vec<(String, Value)> = g.take_definitions(true).into_iter().collect();
    schemas.sort_by(|a, b| a.0.cmp(&b.0));
    let schemas: Map<String, Value> = schemas.into_iter().collect();

    let name = match system {
        System::Erp => "ERP",
        System::Qms => "QMS",
        System::Cmms => "CMMS",
        System::Mes => "MES",
    };
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": format!("plantloop mock {name}"),
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!(
                "The mock {name} as an HTTP server: capability routes for the integration core (tag \
                 `integration`), routes for what people and the plant do (tag `operator`), and the \
                 ledger and event feed for checkers (tag `checker`). Errors are RFC 9457 problem+json \
                 with a `field` member naming the field at fault. Outbound events are CloudEvents \
                 webhooks signed with HMAC-SHA256 (`X-Plantloop-Signature: sha256=<hex>` over \
                 `<X-Plantloop-Timestamp>.<body>`)."
            ),
            "license": { "name": "Apache-2.0", "identifier": "Apache-2.0" }
        },
        "tags": [
            { "name": "integration", "description": "What the integration core asks." },
            { "name": "operator", "description": "What people and the plant do." },
            { "name": "checker", "description": "Ground truth for checkers." },
            { "name": "auth", "description": "OAuth 2.0 client credentials, when the system requires them." }
        ],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                OAUTH_SCHEME: {
                    "type": "oauth2",
                    "description": "Required on the integration routes only when the system is told to (`plantloop mocks --auth`).",
                    "flows": { "clientCredentials": { "tokenUrl": crate::oauth::TOKEN_PATH, "scopes": {} } }
                },
                CLIENT_BASIC_SCHEME: {
                    "type": "http",
                    "scheme": "basic",
                    "description": "The client id and secret at `POST /oauth/token` (RFC 6749 §2.3.1); they may be given in the form instead."
                }
            },
            "parameters": {
                "IdempotencyKey": {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": false,
                    "description": "Identifies a posting across retries. A modern or SaaS system answers a repeated key with its first successful reply and posts nothing (a refusal is not remembered, so the key stays free); a legacy one posts again but keeps the key as the posting's external reference (see GET /postings).",
                    "schema": { "type": "string", "minLength": 1, "maxLength": crate::routes::IDEMPOTENCY_KEY_LEN_MAX, "pattern": "^[\\x21-\\x7e]+$" }
                }
            }
        }
    })
}
