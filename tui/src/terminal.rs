//! Taking the terminal over and giving it back: raw mode and the alternate screen on the way in,
//! the user's terminal as it was on the way out, whether the view quits, fails or panics.
//!
//! [`ScreenGuard`] restores on drop (so on `?` and during unwinding), and [`install_panic_hook`]
//! restores before the panic message is printed (the message would otherwise be drawn on the
//! alternate screen and lost). [`Screen`] is a trait so that the restore path is tested without a
//! terminal.

use ratatui::crossterm::{cursor, execute, terminal};
use std::io;
use std::sync::Once;

/// What entering and leaving the live view does to a terminal.
pub trait Screen {
    fn enter(&mut self) -> io::Result<()>;
    fn leave(&mut self) -> io::Result<()>;
}

/// The real terminal, through crossterm.
#[derive(Debug, Default)]
pub struct Crossterm;

impl Screen for Crossterm {
    fn enter(&mut self) -> io::Result<()> {
        terminal::enable_raw_mode()?;
        execute!(io::stdout(), terminal::EnterAlternateScreen, cursor::Hide)
    }

    fn leave(&mut self) -> io::Result<()> {
        restore_terminal()
    }
}

/// Leaves raw mode and the alternate screen and shows the cursor (harmless when already done).
pub fn restore_terminal() -> io::Result<()> {
    // Raw mode first: it changes how everything after it is printed.
    let raw = terminal::disable_raw_mode();
    let screen = execute!(io::stdout(), terminal::LeaveAlternateScreen, cursor::Show);
    raw.and(screen)
}

/// Holds a [`Screen`] entered; leaves it exactly once, on [`ScreenGuard::restore`] or on drop.
pub struct ScreenGuard<S: Screen> {
    screen: S,
    entered: bool,
}

impl<S: Screen> ScreenGuard<S> {
    /// Enters `screen`. If entering fails half-way, what was done is undone and the error returned.
    pub fn enter(mut screen: S) -> io::Result<ScreenGuard<S>> {
        if let Err(e) = screen.enter() {
            let _ = screen.leave();
            return Err(e);
        }
        Ok(ScreenGuard {
            screen,
            entered: true,
        })
    }

    /// Leaves the screen now (later calls and the drop do nothing).
    pub fn restore(&mut self) -> io::Result<()> {
        if !self.entered {
            return Ok(());
        }
        self.entered = false;
        self.screen.leave()
    }

    /// The screen is still entered.
    pub fn is_entered(&self) -> bool {
        self.entered
    }
}

impl<S: Screen> Drop for ScreenGuard<S> {
    fn drop(&mut self) {
        let _ = self.restore();
    }
}

static HOOK: Once = Once::new();

/// Makes every panic (on any thread) call `restore` before the usual panic message. Installed
/// once per process; later calls do nothing.
pub fn install_panic_hook(restore: impl Fn() + Send + Sync + 'static) {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    #[derive(Clone, Default)]
    struct Fake {
        log: Rc<RefCell<Vec<&'static str>>>,
        fail_enter: bool,
    }

    impl Screen for Fake {
        fn enter(&mut self) -> io::Result<()> {
            self.log.borrow_mut().push("enter");
            if self.fail_enter {
                return Err(io::Error::other("no tty"));
            }
            Ok(())
        }
        fn leave(&mut self) -> io::Result<()> {
            self.log.borrow_mut().push("leave");
            Ok(())
        }
    }

    #[test]
    fn dropping_the_guard_leaves_the_screen_once() {
        let fake = Fake::default();
        {
            let mut g = ScreenGuard::enter(fake.clone()).unwrap();
            assert!(g.is_entered());
            g.restore().unwrap();
            g.restore().unwrap();
            assert!(!g.is_entered());
        }
        assert_eq!(*fake.log.borrow(), ["enter", "leave"]);
        let fake = Fake::default();
        drop(ScreenGuard::enter(fake.clone()).unwrap());
        assert_eq!(*fake.log.borrow(), ["enter", "leave"]);
    }

    #[test]
    fn a_panic_while_entered_still_leaves_the_screen() {
        let fake = Fake::default();
        let f = fake.clone();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _g = ScreenGuard::enter(f).unwrap();
            panic!("boom");
        }));
        assert!(r.is_err());
        assert_eq!(*fake.log.borrow(), ["enter", "leave"]);
    }

    #[test]
    fn a_failed_enter_undoes_itself() {
        let fake = Fake {
            fail_enter: true,
            ..Fake::default()
        };
        let e = ScreenGuard::enter(fake.clone()).err().unwrap();
        assert_eq!(e.to_string(), "no tty");
        assert_eq!(*fake.log.borrow(), ["enter", "leave"]);
    }
}
