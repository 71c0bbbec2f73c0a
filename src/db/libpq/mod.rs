//! libpq's documented rules for finding a server and a password, in one place: connection
//! strings ([`conninfo`]), keywords and their environment variables ([`params`]), service files
//! ([`service`]) and the password file ([`pgpass`]). [`crate::db::conn`] turns the result into
//! connection attempts; [`crate::db::tls`] does TLS as libpq does.

pub mod conninfo;
pub mod params;
pub mod pgpass;
pub mod service;

pub use params::Params;

/// The environment a [`crate::db::ConnSpec`] is resolved from; a parameter so tests need not touch the
/// process environment.
pub trait Env {
    fn var(&self, key: &str) -> Option<String>;

    /// A warning libpq would print (a password file with group or world access).
    fn warn(&self, message: &str) {
        eprintln!("WARNING: {message}");
    }
}

pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.is_empty())
    }
}

/// Parse `text` (a URL, `key=value` pairs or a database name) and fill it in from the service
/// file and the environment.
pub fn resolve(text: Option<&str>, env: &dyn Env) -> Result<Params, String> {
    let explicit = match text {
        Some(text) => conninfo::parse(text)?,
        None => Vec::new(),
    };
    Params::resolve(explicit, env)
}
