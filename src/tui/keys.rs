//! Actions and the keymap. One table drives both key resolution and the help overlay, so the
//! help can never disagree with what the keys do.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Up,
    Down,
    PageUp,
    PageDown,
    Open,
    NextScreen,
    PrevScreen,
    Apply,
    ApplyStage,
    Rollback,
    RollbackStage,
    RollbackAll,
    Pause,
    Cancel,
    Validate,
    ToggleShared,
    WritePlan,
    Help,
    Quit,
    Confirm,
    Dismiss,
    Force,
    StepBack,
    StepForward,
    /// Text typed into a prompt.
    Input(char),
    Backspace,
}

/// Where the keys go: overlays take the keys before the screens do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    Normal,
    Confirm,
    Prompt,
    Help,
}

pub struct Binding {
    pub keys: &'static [(KeyCode, KeyModifiers)],
    pub action: Action,
    pub context: Context,
    /// How the keys are written in the help and the bottom bar.
    pub label: &'static str,
    pub help: &'static str,
    /// Shown in the bottom bar (with the label) when set.
    pub short: Option<&'static str>,
}

const NONE: KeyModifiers = KeyModifiers::NONE;
const SHIFT: KeyModifiers = KeyModifiers::SHIFT;
const CTRL: KeyModifiers = KeyModifiers::CONTROL;

pub const KEYMAP: &[Binding] = &[
    Binding {
        keys: &[(KeyCode::Up, NONE), (KeyCode::Char('k'), NONE)],
        action: Action::Up,
        context: Context::Normal,
        label: "↑/k",
        help: "move up",
        short: None,
    },
    Binding {
        keys: &[(KeyCode::Down, NONE), (KeyCode::Char('j'), NONE)],
        action: Action::Down,
        context: Context::Normal,
        label: "↓/j",
        help: "move down",
        short: Some("move"),
    },
    Binding {
        keys: &[(KeyCode::PageUp, NONE)],
        action: Action::PageUp,
        context: Context::Normal,
        label: "PgUp",
        help: "scroll up a page",
        short: None,
    },
    Binding {
        keys: &[(KeyCode::PageDown, NONE)],
        action: Action::PageDown,
        context: Context::Normal,
        label: "PgDn",
        help: "scroll down a page",
        short: None,
    },
    Binding {
        keys: &[(KeyCode::Enter, NONE)],
        action: Action::Open,
        context: Context::Normal,
        label: "Enter",
        help: "plan: open or close a stage; overview: go to the plan",
        short: Some("open"),
    },
    Binding {
        keys: &[(KeyCode::Tab, NONE)],
        action: Action::NextScreen,
        context: Context::Normal,
        label: "Tab",
        help: "next screen (Overview, Plan, Counts, Log)",
        short: Some("screen"),
    },
    Binding {
        keys: &[(KeyCode::BackTab, SHIFT), (KeyCode::BackTab, NONE)],
        action: Action::PrevScreen,
        context: Context::Normal,
        label: "S-Tab",
        help: "previous screen",
        short: None,
    },
    Binding {
        keys: &[(KeyCode::Left, NONE), (KeyCode::Char('h'), NONE)],
        action: Action::StepBack,
        context: Context::Normal,
        label: "←/h",
        help: "replay: step back",
        short: None,
    },
    Binding {
        keys: &[(KeyCode::Right, NONE), (KeyCode::Char('l'), NONE)],
        action: Action::StepForward,
        context: Context::Normal,
        label: "→/l",
        help: "replay: step forward",
        short: None,
    },
    Binding {
        keys: &[(KeyCode::Char('a'), NONE)],
        action: Action::Apply,
        context: Context::Normal,
        label: "a",
        help: "apply through the selected step (pending ones before it too), after a confirmation",
        short: Some("apply"),
    },
    Binding {
        keys: &[(KeyCode::Char('A'), SHIFT), (KeyCode::Char('A'), NONE)],
        action: Action::ApplyStage,
        context: Context::Normal,
        label: "A",
        help: "apply through the end of the selected stage (pending ones before it too), after a confirmation",
        short: Some("stage"),
    },
    Binding {
        keys: &[(KeyCode::Char('r'), NONE)],
        action: Action::Rollback,
        context: Context::Normal,
        label: "r",
        help: "roll back the last applied step, after a confirmation",
        short: Some("rollback"),
    },
    Binding {
        keys: &[(KeyCode::Char('R'), SHIFT), (KeyCode::Char('R'), NONE)],
        action: Action::RollbackStage,
        context: Context::Normal,
        label: "R",
        help: "roll back the selected stage and every later one, after a confirmation",
        short: None,
    },
    Binding {
        keys: &[(KeyCode::Char('U'), SHIFT), (KeyCode::Char('U'), NONE)],
        action: Action::RollbackAll,
        context: Context::Normal,
        label: "U",
        help: "roll back everything, after a confirmation",
        short: None,
    },
    Binding {
        keys: &[(KeyCode::Char('p'), NONE)],
        action: Action::Pause,
        context: Context::Normal,
        label: "p",
        help: "pause or resume a backfill",
        short: None,
    },
    Binding {
        keys: &[(KeyCode::Char('c'), NONE)],
        action: Action::Cancel,
        context: Context::Normal,
        label: "c",
        help: "cancel the running step safely (its transaction rolls back; resumable)",
        short: None,
    },
    Binding {
        keys: &[(KeyCode::Char('v'), NONE)],
        action: Action::Validate,
        context: Context::Normal,
        label: "v",
        help: "re-run validation (all counts)",
        short: Some("validate"),
    },
    Binding {
        keys: &[(KeyCode::Char('e'), NONE)],
        action: Action::ToggleShared,
        context: Context::Normal,
        label: "e",
        help: "overview: make a table shared or tenant-scoped (a plan built in the wizard, before anything is applied)",
        short: None,
    },
    Binding {
        keys: &[(KeyCode::Char('w'), NONE)],
        action: Action::WritePlan,
        context: Context::Normal,
        label: "w",
        help: "write the plan to a file",
        short: None,
    },
    Binding {
        keys: &[(KeyCode::Char('?'), NONE), (KeyCode::Char('?'), SHIFT)],
        action: Action::Help,
        context: Context::Normal,
        label: "?",
        help: "this help",
        short: Some("help"),
    },
    Binding {
        keys: &[(KeyCode::Char('q'), NONE), (KeyCode::Char('c'), CTRL)],
        action: Action::Quit,
        context: Context::Normal,
        label: "q",
        help: "quit, also Ctrl-C (asks while a step runs or if the applied plan is in no file)",
        short: Some("quit"),
    },
    Binding {
        keys: &[(KeyCode::Char('y'), NONE), (KeyCode::Enter, NONE)],
        action: Action::Confirm,
        context: Context::Confirm,
        label: "y/Enter",
        help: "confirm",
        short: Some("confirm"),
    },
    Binding {
        keys: &[(KeyCode::Char('n'), NONE), (KeyCode::Esc, NONE), (KeyCode::Char('q'), NONE)],
        action: Action::Dismiss,
        context: Context::Confirm,
        label: "n/Esc",
        help: "cancel (also q)",
        short: Some("cancel"),
    },
    Binding {
        keys: &[(KeyCode::Char('F'), SHIFT), (KeyCode::Char('F'), NONE)],
        action: Action::Force,
        context: Context::Confirm,
        label: "F",
        help: "rollback: undo even where it erases tenant assignments (--force)",
        short: Some("force"),
    },
    Binding {
        keys: &[(KeyCode::Enter, NONE)],
        action: Action::Confirm,
        context: Context::Prompt,
        label: "Enter",
        help: "write",
        short: Some("write"),
    },
    Binding {
        keys: &[(KeyCode::Esc, NONE)],
        action: Action::Dismiss,
        context: Context::Prompt,
        label: "Esc",
        help: "cancel",
        short: Some("cancel"),
    },
    Binding {
        keys: &[(KeyCode::Backspace, NONE)],
        action: Action::Backspace,
        context: Context::Prompt,
        label: "Bksp",
        help: "delete",
        short: None,
    },
    Binding {
        keys: &[
            (KeyCode::Esc, NONE),
            (KeyCode::Char('?'), NONE),
            (KeyCode::Char('?'), SHIFT),
            (KeyCode::Char('q'), NONE),
            (KeyCode::Enter, NONE),
        ],
        action: Action::Dismiss,
        context: Context::Help,
        label: "Esc/?",
        help: "close the help (also q, Enter)",
        short: Some("close"),
    },
];

/// The action a key press means in `context`, if any.
pub fn resolve(key: &KeyEvent, context: Context) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    // Ctrl-C always means quit (in raw mode it arrives as a key, not a signal).
    if key.code == KeyCode::Char('c') && key.modifiers.contains(CTRL) {
        return Some(Action::Quit);
    }
    let found = KEYMAP.iter().filter(|b| b.context == context).find(|b| {
        b.keys.iter().any(|(code, modifiers)| {
            *code == key.code
                && (*modifiers == key.modifiers
                    || (*modifiers == NONE
                        && key.modifiers == SHIFT
                        && matches!(code, KeyCode::Char(c) if !c.is_ascii_lowercase())))
        })
    });
    match (found, context) {
        (Some(binding), _) => Some(binding.action),
        (None, Context::Prompt) => match key.code {
            KeyCode::Char(c) if !key.modifiers.contains(CTRL) => Some(Action::Input(c)),
            _ => None,
        },
        _ => None,
    }
}

/// (keys, what they do) for the help overlay, in keymap order, screen keys first.
pub fn help_lines() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> =
        KEYMAP.iter().filter(|b| b.context == Context::Normal).map(|b| (b.label, b.help)).collect();
    out.extend(KEYMAP.iter().filter(|b| b.context == Context::Confirm).map(|b| (b.label, b.help)));
    out
}

/// The keymap as a Markdown table, for the README (tests/readme.rs keeps the two equal).
pub fn markdown_table() -> String {
    let mut out = String::from("| key | where | what it does |\n|-----|-------|--------------|\n");
    for binding in KEYMAP {
        let context = match binding.context {
            Context::Normal => "screens",
            Context::Confirm => "confirmation",
            Context::Prompt => "file prompt",
            Context::Help => "help",
        };
        let label = binding.label.replace('|', "\\|");
        out.push_str(&format!("| `{label}` | {context} | {} |\n", binding.help));
    }
    out
}

/// (keys, word) pairs for the bottom bar in `context`.
pub fn bar(context: Context, read_only: bool) -> Vec<(&'static str, &'static str)> {
    KEYMAP
        .iter()
        .filter(|b| b.context == context)
        .filter(|b| {
            let changes = matches!(
                b.action,
                Action::Apply
                    | Action::ApplyStage
                    | Action::Rollback
                    | Action::RollbackStage
                    | Action::RollbackAll
            );
            !read_only || !changes
        })
        .filter(|b| read_only || !matches!(b.action, Action::StepBack | Action::StepForward))
        .filter_map(|b| b.short.map(|s| (b.label, s)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn the_documented_keys_resolve() {
        let cases = [
            (KeyCode::Up, NONE, Action::Up),
            (KeyCode::Char('k'), NONE, Action::Up),
            (KeyCode::Down, NONE, Action::Down),
            (KeyCode::Char('j'), NONE, Action::Down),
            (KeyCode::Enter, NONE, Action::Open),
            (KeyCode::Char('a'), NONE, Action::Apply),
            (KeyCode::Char('A'), SHIFT, Action::ApplyStage),
            (KeyCode::Char('r'), NONE, Action::Rollback),
            (KeyCode::Char('R'), SHIFT, Action::RollbackStage),
            (KeyCode::Char('U'), SHIFT, Action::RollbackAll),
            (KeyCode::Char('p'), NONE, Action::Pause),
            (KeyCode::Char('c'), NONE, Action::Cancel),
            (KeyCode::Char('v'), NONE, Action::Validate),
            (KeyCode::Char('e'), NONE, Action::ToggleShared),
            (KeyCode::Char('w'), NONE, Action::WritePlan),
            (KeyCode::Char('?'), SHIFT, Action::Help),
            (KeyCode::Char('q'), NONE, Action::Quit),
            (KeyCode::Char('c'), CTRL, Action::Quit),
            (KeyCode::Tab, NONE, Action::NextScreen),
            (KeyCode::Left, NONE, Action::StepBack),
            (KeyCode::Char('l'), NONE, Action::StepForward),
        ];
        for (code, modifiers, action) in cases {
            assert_eq!(
                resolve(&key(code, modifiers), Context::Normal),
                Some(action),
                "{code:?} {modifiers:?}"
            );
        }
        assert_eq!(resolve(&key(KeyCode::Char('z'), NONE), Context::Normal), None);
    }

    #[test]
    fn overlays_take_their_own_keys() {
        assert_eq!(resolve(&key(KeyCode::Char('y'), NONE), Context::Confirm), Some(Action::Confirm));
        assert_eq!(resolve(&key(KeyCode::Esc, NONE), Context::Confirm), Some(Action::Dismiss));
        assert_eq!(
            resolve(&key(KeyCode::Char('a'), NONE), Context::Confirm),
            None,
            "no applying from a dialog"
        );
        assert_eq!(resolve(&key(KeyCode::Char('F'), SHIFT), Context::Confirm), Some(Action::Force));
        assert_eq!(resolve(&key(KeyCode::Char('x'), NONE), Context::Prompt), Some(Action::Input('x')));
        assert_eq!(resolve(&key(KeyCode::Char('q'), NONE), Context::Prompt), Some(Action::Input('q')));
        assert_eq!(resolve(&key(KeyCode::Enter, NONE), Context::Prompt), Some(Action::Confirm));
        assert_eq!(resolve(&key(KeyCode::Esc, NONE), Context::Help), Some(Action::Dismiss));
        assert_eq!(resolve(&key(KeyCode::Char('c'), CTRL), Context::Prompt), Some(Action::Quit));
    }

    #[test]
    fn key_releases_are_ignored() {
        let mut release = key(KeyCode::Char('a'), NONE);
        release.kind = KeyEventKind::Release;
        assert_eq!(resolve(&release, Context::Normal), None);
    }

    #[test]
    fn help_is_generated_from_the_keymap_and_covers_every_normal_binding() {
        let help = help_lines();
        for binding in KEYMAP.iter().filter(|b| b.context == Context::Normal) {
            assert!(help.contains(&(binding.label, binding.help)), "{} missing from help", binding.label);
        }
        assert!(help.iter().any(|(k, h)| *k == "a" && h.contains("apply")));
    }

    #[test]
    fn the_bottom_bar_hides_what_a_replay_cannot_do() {
        assert!(bar(Context::Normal, false).iter().any(|(k, _)| *k == "a"));
        assert!(!bar(Context::Normal, true).iter().any(|(k, _)| *k == "a" || *k == "r"));
    }
}
