//! Parsed and merged configuration for every directive mod_rwsgi understands. Pure data: no
//! Apache or Python here, so every rule is unit-tested on plain values.

pub mod alias;
pub mod daemon;
pub mod directives;
pub mod expand;
pub mod python;

pub use alias::{AliasOptions, ScriptAlias};
pub use python::{ImportScript, PythonOptions};

/// Per-server (main server or virtual host) settings.
#[derive(Debug, Default, Clone)]
pub struct ServerConfig {
    /// `WSGIScriptAlias`/`WSGIScriptAliasMatch` entries in config order (a vhost's own first
    /// after merging, then the main server's).
    pub aliases: Vec<ScriptAlias>,
    /// The Python runtime directives. Set at main-server scope only; a virtual host carries
    /// a copy of the main server's after merging, so a request sees them through its server.
    pub python: PythonOptions,
    /// `WSGIImportScript` lines of this server itself (never inherited, so walking the
    /// server list visits each once).
    pub import_scripts: Vec<ImportScript>,
    /// `WSGIDaemonProcess` groups defined by this server itself (never inherited: a group
    /// defined in a virtual host is usable only there).
    pub daemon_groups: Vec<daemon::DaemonGroup>,
}

/// Per-directory settings (server, vhost, `<Directory>`, `<Location>`, `.htaccess`).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DirConfig {
    pub callable_object: Option<String>,
    pub pass_authorization: Option<bool>,
    pub chunked_request: Option<bool>,
    pub map_head_to_get: Option<MapHeadToGet>,
    pub application_group: Option<String>,
    pub process_group: Option<String>,
    pub script_reloading: Option<bool>,
    pub enable_sendfile: Option<bool>,
}

/// `WSGIMapHEADToGET` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapHeadToGet {
    Off,
    On,
    Auto,
}

/// Combines a parent configuration with a more specific one.
pub trait Merge {
    /// The effective configuration where `self` is the parent and `child` overrides it.
    fn merge(&self, child: &Self) -> Self;
}

impl Merge for ServerConfig {
    fn merge(&self, child: &Self) -> Self {
        let mut aliases = child.aliases.clone();
        aliases.extend(self.aliases.iter().cloned());
        ServerConfig {
            aliases,
            python: self.python.clone(),
            import_scripts: child.import_scripts.clone(),
            daemon_groups: child.daemon_groups.clone(),
        }
    }
}

impl Merge for DirConfig {
    fn merge(&self, child: &Self) -> Self {
        fn pick<T: Clone>(parent: &Option<T>, child: &Option<T>) -> Option<T> {
            child.clone().or_else(|| parent.clone())
        }
        DirConfig {
            callable_object: pick(&self.callable_object, &child.callable_object),
            pass_authorization: pick(&self.pass_authorization, &child.pass_authorization),
            chunked_request: pick(&self.chunked_request, &child.chunked_request),
            map_head_to_get: pick(&self.map_head_to_get, &child.map_head_to_get),
            application_group: pick(&self.application_group, &child.application_group),
            process_group: pick(&self.process_group, &child.process_group),
            script_reloading: pick(&self.script_reloading, &child.script_reloading),
            enable_sendfile: pick(&self.enable_sendfile, &child.enable_sendfile),
        }
    }
}

/// Parses an `On`/`Off` argument (case-insensitive), as Apache's FLAG directives do.
pub fn parse_on_off(directive: &str, value: &str) -> Result<bool, String> {
    if value.eq_ignore_ascii_case("on") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("off") {
        Ok(false)
    } else {
        Err(format!(
            "{directive}: '{value}' is not valid; use On or Off"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_merge_child_wins_and_inherits() {
        let parent = DirConfig {
            callable_object: Some("app".into()),
            chunked_request: Some(true),
            ..Default::default()
        };
        let child = DirConfig {
            callable_object: Some("other".into()),
            ..Default::default()
        };
        let m = parent.merge(&child);
        assert_eq!(m.callable_object.as_deref(), Some("other"));
        assert_eq!(m.chunked_request, Some(true));
        assert_eq!(m.pass_authorization, None);
    }

    #[test]
    fn server_merge_python_from_main_import_scripts_own() {
        let main = ServerConfig {
            python: PythonOptions {
                optimize: Some(1),
                ..Default::default()
            },
            import_scripts: vec![ImportScript {
                path: "/m.py".into(),
                process_group: String::new(),
                application_group: String::new(),
            }],
            ..Default::default()
        };
        let vhost = ServerConfig::default();
        let m = main.merge(&vhost);
        assert_eq!(m.python.optimize, Some(1));
        assert!(m.import_scripts.is_empty());
    }

    #[test]
    fn on_off() {
        assert_eq!(parse_on_off("X", "ON"), Ok(true));
        assert_eq!(parse_on_off("X", "off"), Ok(false));
        assert!(parse_on_off("X", "yes").unwrap_err().contains("On or Off"));
    }
}
