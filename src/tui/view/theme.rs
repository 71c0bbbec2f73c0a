//! The palette: a few restrained colours, or none at all under `NO_COLOR` (then only bold,
//! dim and reversed carry meaning).

use ratatui::style::{Color, Modifier, Style};

use crate::plan::{LockMode, Severity};
use crate::tui::state::{LogKind, Theme, UiStepState};

#[derive(Debug, Clone, Copy)]
pub struct Palette {
    color: bool,
}

impl Palette {
    pub fn new(theme: Theme) -> Palette {
        Palette { color: theme.color }
    }

    fn fg(self, color: Color, fallback: Modifier) -> Style {
        if self.color { Style::new().fg(color) } else { Style::new().add_modifier(fallback) }
    }

    pub fn plain(self) -> Style {
        Style::new()
    }

    pub fn bold(self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }

    pub fn ok(self) -> Style {
        self.fg(Color::Green, Modifier::empty())
    }

    pub fn running(self) -> Style {
        self.fg(Color::Yellow, Modifier::BOLD)
    }

    pub fn warn(self) -> Style {
        self.fg(Color::Yellow, Modifier::BOLD)
    }

    pub fn error(self) -> Style {
        self.fg(Color::Red, Modifier::BOLD).add_modifier(Modifier::BOLD)
    }

    pub fn dim(self) -> Style {
        self.fg(Color::DarkGray, Modifier::DIM)
    }

    /// Section titles and labels.
    pub fn title(self) -> Style {
        self.fg(Color::Cyan, Modifier::empty()).add_modifier(Modifier::BOLD)
    }

    /// The selected row.
    pub fn selected(self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }

    /// Key names in the bottom bar and dialogs.
    pub fn key(self) -> Style {
        self.fg(Color::Cyan, Modifier::empty()).add_modifier(Modifier::BOLD)
    }

    /// The header bar and the active tab.
    pub fn bar(self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }

    pub fn sql(self) -> Style {
        Style::new()
    }

    pub fn state(self, state: UiStepState) -> Style {
        match state {
            UiStepState::Pending => self.dim(),
            UiStepState::Running => self.running(),
            UiStepState::Done => self.ok(),
            UiStepState::Failed => self.error(),
            UiStepState::RolledBack => self.fg(Color::Magenta, Modifier::empty()),
            UiStepState::Skipped => self.dim(),
        }
    }

    pub fn severity(self, severity: Severity) -> Style {
        match severity {
            Severity::Info => self.plain(),
            Severity::Warning => self.warn(),
            Severity::Error => self.error(),
        }
    }

    /// How much a lock hurts the application: reads and writes stop (red), writes stop
    /// (yellow), nothing stops (green).
    pub fn lock(self, lock: LockMode) -> Style {
        if lock.blocks_reads() {
            self.error()
        } else if lock.blocks_writes() {
            self.warn()
        } else {
            self.ok()
        }
    }

    pub fn log(self, kind: LogKind) -> Style {
        match kind {
            LogKind::Info => self.plain(),
            LogKind::Statement => self.dim(),
            LogKind::Done => self.ok(),
            LogKind::Warning => self.warn(),
            LogKind::Failure => self.error(),
        }
    }

    /// Numbers that should be zero: highlighted when they are not.
    pub fn problem_if(self, bad: bool) -> Style {
        if bad { self.error() } else { self.plain() }
    }
}

pub fn severity_marker(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "·",
        Severity::Warning => "!",
        Severity::Error => "✗",
    }
}

pub fn log_marker(kind: LogKind) -> &'static str {
    match kind {
        LogKind::Info => "·",
        LogKind::Statement => "›",
        LogKind::Done => "✓",
        LogKind::Warning => "!",
        LogKind::Failure => "✗",
    }
}
