//! Parsed and merged configuration for every directive mod_rwsgi understands. Pure data: no
//! Apache or Python here, so every rule is unit-tested on plain values.

pub mod alias;
pub mod compat;
pub mod daemon;
pub mod directives;
pub mod expand;
pub mod interp_options;
pub mod proxy;
pub mod python;
pub mod scripts;
pub mod words;

pub use alias::{AliasOptions, ScriptAlias};
pub use python::{ImportScript, PythonOptions};
pub use scripts::{HandlerScript, HookScript};

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
    /// Directives of this server's own lines that are accepted but change nothing here,
    /// each with the reason, logged once at start-up (never inherited).
    pub notices: Vec<Notice>,
    /// The daemon-mode server directives. Main server only; a virtual host carries a copy.
    pub daemon: DaemonSettings,
}

/// `WSGISocketPrefix`, `WSGISocketRotation` and `WSGIRestrictEmbedded`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DaemonSettings {
    /// Absolute path prefix of the daemon sockets (unset: the runtime directory's `rwsgi`).
    pub socket_prefix: Option<String>,
    /// Default On: the socket names change with each generation.
    pub socket_rotation: Option<bool>,
    /// Default Off: On refuses requests that would run embedded.
    pub restrict_embedded: Option<bool>,
}

impl DaemonSettings {
    /// True when socket names change with each configuration generation.
    pub fn rotation(&self) -> bool {
        self.socket_rotation.unwrap_or(true)
    }

    /// True when no request may run in embedded mode.
    pub fn embedded_restricted(&self) -> bool {
        self.restrict_embedded.unwrap_or(false)
    }
}

/// A directive accepted without effect, and why (logged at start-up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub directive: &'static str,
    pub reason: String,
    /// The directive acts on daemon mode only: it is without effect (and logged) only when
    /// the configuration defines no `WSGIDaemonProcess` group.
    pub daemon_mode_only: bool,
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
    /// `WSGIAccessScript`.
    pub access_script: Option<HookScript>,
    /// `WSGIAuthUserScript` (authn provider `wsgi`).
    pub auth_user_script: Option<HookScript>,
    /// `WSGIAuthGroupScript` (authz provider `wsgi-group`).
    pub auth_group_script: Option<HookScript>,
    /// `WSGIGroupAuthoritative`.
    pub group_authoritative: Option<bool>,
    /// `WSGIDispatchScript`.
    pub dispatch_script: Option<HookScript>,
    /// `WSGIHandlerScript` entries, the innermost section's first.
    pub handler_scripts: Vec<HandlerScript>,
    /// `WSGIErrorOverride`: acts on daemon mode responses only (as in mod_wsgi).
    pub error_override: Option<bool>,
    /// `WSGIIgnoreActivity`: acts on a daemon group's inactivity-timeout only.
    pub ignore_activity: Option<bool>,
    /// `WSGIPassApacheRequest`: `apache.request_rec` in the environ (embedded mode).
    pub pass_apache_request: Option<bool>,
    /// `WSGITrustedProxyHeaders`, in config order (lines of one scope add up).
    pub trusted_proxy_headers: Option<Vec<proxy::ProxyHeader>>,
    /// `WSGITrustedProxies` (lines of one scope add up); unset: every peer is trusted.
    pub trusted_proxies: Option<Vec<proxy::IpNet>>,
    /// `WSGIRestrictProcess`: the process groups a request may end up in (`''` is embedded);
    /// unset: any.
    pub restrict_process: Option<Vec<String>>,
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
            notices: child.notices.clone(),
            daemon: self.daemon.clone(),
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
            access_script: pick(&self.access_script, &child.access_script),
            auth_user_script: pick(&self.auth_user_script, &child.auth_user_script),
            auth_group_script: pick(&self.auth_group_script, &child.auth_group_script),
            group_authoritative: pick(&self.group_authoritative, &child.group_authoritative),
            dispatch_script: pick(&self.dispatch_script, &child.dispatch_script),
            handler_scripts: {
                let mut all = child.handler_scripts.clone();
                all.extend(
                    self.handler_scripts
                        .iter()
                        .filter(|h| !child.handler_scripts.iter().any(|c| c.name == h.name))
                        .cloned(),
                );
                all
            },
            error_override: pick(&self.error_override, &child.error_override),
            ignore_activity: pick(&self.ignore_activity, &child.ignore_activity),
            pass_apache_request: pick(&self.pass_apache_request, &child.pass_apache_request),
            trusted_proxy_headers: pick(&self.trusted_proxy_headers, &child.trusted_proxy_headers),
            trusted_proxies: pick(&self.trusted_proxies, &child.trusted_proxies),
            restrict_process: pick(&self.restrict_process, &child.restrict_process),
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
