//! Terminal setup and the event loop (stub).
