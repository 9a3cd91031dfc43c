//! The panic hook restores the terminal before the panic is reported, on any thread, and is
//! installed once however often it is asked for. (Its own test binary: hooks are per process.)

use plantloop_tui::terminal::install_panic_hook;
use std::sync::atomic::{AtomicUsize, Ordering};

static RESTORED: AtomicUsize = AtomicUsize::new(0);

#[test]
fn a_panic_on_any_thread_restores_first() {
    install_panic_hook(|| {
        RESTORED.fetch_add(1, Ordering::SeqCst);
    });
    install_panic_hook(|| panic!("a second hook must not be installed"));
    let r = std::panic::catch_unwind(|| panic!("on the UI thread"));
    assert!(r.is_err());
    assert_eq!(RESTORED.load(Ordering::SeqCst), 1);
    let t = std::thread::spawn(|| panic!("on the simulation thread"));
    assert!(t.join().is_err());
    assert_eq!(RESTORED.load(Ordering::SeqCst), 2);
}
