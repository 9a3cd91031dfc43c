//! Which system an event comes from, by its CloudEvents `source`: the last segment of the
//! source's path names the system (`/erp`, `/qms`, `/cmms`, `/plants/{plant}/mes`, and likewise
//! `/plants/{plant}/erp`), as the mocks name their feeds (docs/mocks.md, "Identity").
//!
//! `plantloop serve` refuses an event on `POST /webhooks/{system}` whose source names another
//! system (or none): a system's webhook secret vouches for that system's events only.

use plantloop_core::model::System;

/// The system `source` names, if any: the last path segment of the URI reference (query and
/// fragment ignored, a trailing `/` too).
pub fn system_of(source: &str) -> Option<System> {
    let path = source.split(['?', '#']).next().unwrap_or("");
    let last = path.trim_end_matches('/').rsplit('/').next()?;
    System::ALL.into_iter().find(|s| s.as_str() == last)
}

/// True when `source` names `system`.
pub fn belongs_to(source: &str, system: System) -> bool {
    system_of(source) == Some(system)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_path_segment_names_the_system() {
        assert_eq!(system_of("/erp"), Some(System::Erp));
        assert_eq!(system_of("/qms"), Some(System::Qms));
        assert_eq!(system_of("/cmms/"), Some(System::Cmms));
        assert_eq!(system_of("/plants/P1/mes"), Some(System::Mes));
        assert_eq!(system_of("/plants/P1/erp"), Some(System::Erp));
        assert_eq!(
            system_of("https://erp.example/x/qms?a=b"),
            Some(System::Qms)
        );
        assert_eq!(system_of("erp"), Some(System::Erp));
        for none in ["", "/", "/plants/P1", "/erpx", "/mes-1", "/plants/erp/P1"] {
            assert_eq!(system_of(none), None, "{none:?}");
        }
        assert!(belongs_to("/plants/P2/mes", System::Mes));
        assert!(!belongs_to("/plants/P2/mes", System::Erp));
    }
}
