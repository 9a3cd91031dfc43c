//! Keys → [`Action`]s. The mapping is a pure function of the key, so it is tested without a
//! terminal; what an action does depends on the app's state ([`crate::app::App::apply`]).

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// A direction of the selection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    Up,
    Down,
    Left,
    Right,
}

/// Something the user asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// space: pause or resume the simulation.
    TogglePause,
    /// +: the next faster speed.
    Faster,
    /// −: the next slower speed.
    Slower,
    /// s: pause and process one kernel event.
    Step,
    /// w: WAN outage on the selected station's plant.
    WanOutage,
    /// c: crash the integration core.
    CrashCore,
    /// e: ERP outage.
    ErpOutage,
    /// arrows: move the selection.
    Move(Dir),
    /// tab / shift-tab: the other panel.
    NextPanel,
    PrevPanel,
    /// enter: open the selected workflow's timeline.
    Open,
    /// esc: close the help or the timeline.
    Back,
    /// ?: show or hide the keys.
    ToggleHelp,
    /// q, ctrl-c: leave.
    Quit,
}

/// The action of a key press (key releases and repeats of non-movement keys do nothing).
pub fn action_for(key: KeyEvent) -> Option<Action> {
    let movement = matches!(
        key.code,
        KeyCode::Up | KeyCode::Down | KeyCode::Left | KeyCode::Right
    );
    match key.kind {
        KeyEventKind::Press => {}
        KeyEventKind::Repeat if movement => {}
        _ => return None,
    }
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        return matches!(key.code, KeyCode::Char('c')).then_some(Action::Quit);
    }
    Some(match key.code {
        KeyCode::Char(' ') => Action::TogglePause,
        // '=' is '+' without shift; '−' is the minus sign the issue writes.
        KeyCode::Char('+' | '=') => Action::Faster,
        KeyCode::Char('-' | '_' | '\u{2212}') => Action::Slower,
        KeyCode::Char('s') => Action::Step,
        KeyCode::Char('w') => Action::WanOutage,
        KeyCode::Char('c') => Action::CrashCore,
        KeyCode::Char('e') => Action::ErpOutage,
        KeyCode::Up => Action::Move(Dir::Up),
        KeyCode::Down => Action::Move(Dir::Down),
        KeyCode::Left => Action::Move(Dir::Left),
        KeyCode::Right => Action::Move(Dir::Right),
        KeyCode::Tab => Action::NextPanel,
        KeyCode::BackTab => Action::PrevPanel,
        KeyCode::Enter => Action::Open,
        KeyCode::Esc => Action::Back,
        KeyCode::Char('?') => Action::ToggleHelp,
        KeyCode::Char('q') => Action::Quit,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::crossterm::event::KeyEventState;

    fn press(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn every_documented_key_maps_to_its_action() {
        let cases = [
            (KeyCode::Char(' '), Action::TogglePause),
            (KeyCode::Char('+'), Action::Faster),
            (KeyCode::Char('='), Action::Faster),
            (KeyCode::Char('-'), Action::Slower),
            (KeyCode::Char('\u{2212}'), Action::Slower),
            (KeyCode::Char('s'), Action::Step),
            (KeyCode::Char('w'), Action::WanOutage),
            (KeyCode::Char('c'), Action::CrashCore),
            (KeyCode::Char('e'), Action::ErpOutage),
            (KeyCode::Up, Action::Move(Dir::Up)),
            (KeyCode::Down, Action::Move(Dir::Down)),
            (KeyCode::Left, Action::Move(Dir::Left)),
            (KeyCode::Right, Action::Move(Dir::Right)),
            (KeyCode::Tab, Action::NextPanel),
            (KeyCode::BackTab, Action::PrevPanel),
            (KeyCode::Enter, Action::Open),
            (KeyCode::Esc, Action::Back),
            (KeyCode::Char('?'), Action::ToggleHelp),
            (KeyCode::Char('q'), Action::Quit),
        ];
        for (code, want) in cases {
            assert_eq!(action_for(press(code)), Some(want), "{code:?}");
        }
    }

    #[test]
    fn other_keys_releases_and_modifiers_do_nothing() {
        for code in [KeyCode::Char('x'), KeyCode::Char('Q'), KeyCode::F(1)] {
            assert_eq!(action_for(press(code)), None, "{code:?}");
        }
        let release = KeyEvent {
            kind: KeyEventKind::Release,
            ..press(KeyCode::Char('q'))
        };
        assert_eq!(action_for(release), None);
        let alt_w = KeyEvent::new(KeyCode::Char('w'), KeyModifiers::CONTROL);
        assert_eq!(action_for(alt_w), None, "ctrl-w injects nothing");
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(
            action_for(ctrl_c),
            Some(Action::Quit),
            "ctrl-c quits, not crash"
        );
    }

    #[test]
    fn held_arrows_repeat_but_held_fault_keys_do_not() {
        let repeat = |code| KeyEvent {
            code,
            modifiers: KeyModifiers::NONE,
            kind: KeyEventKind::Repeat,
            state: KeyEventState::NONE,
        };
        assert_eq!(
            action_for(repeat(KeyCode::Down)),
            Some(Action::Move(Dir::Down))
        );
        assert_eq!(action_for(repeat(KeyCode::Char('c'))), None);
    }
}
