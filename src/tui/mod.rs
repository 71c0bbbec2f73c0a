//! The wizard: an interactive terminal UI over the engine.
//!
//! `state` is plain data, `update` the only place it changes (pure: no awaiting), `keys` the
//! keymap the help is generated from, `view` pure drawing, `runtime` the terminal and the tasks
//! that talk to the database and report back as messages.

pub mod keys;
pub mod replay;
pub mod runtime;
pub mod state;
pub mod update;
pub mod view;
