//! The vendor conformance suite: checks of a real ERP, QMS, CMMS or MES endpoint against the
//! contracts plantloop's mock systems implement (the OpenAPI documents in `mocks-http/openapi/`).
//!
//! Not built yet: the crate holds the suite's place in the workspace so that its dependencies stay
//! declared where design.md puts them. Until it exists, vendors compare their endpoints by hand
//! with `plantloop mocks` and the OpenAPI documents.
