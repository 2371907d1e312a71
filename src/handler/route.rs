//! Which transport, interpreter and callable serve a request: one pure function of the
//! configured names (after `%{…}` expansion), a dispatch script's overrides and the
//! restrictions, so that embedded and daemon requests are routed alike and the rules are
//! unit-tested without Apache.

use crate::config::alias::AliasOptions;
use crate::config::expand::{self, ExpandContext};
use crate::wsgi::failure::Failure;

/// Where the configuration names a request's groups and callable.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sources<'a> {
    /// The matched alias's (or handler script's) `process-group=`, `application-group=`,
    /// `callable-object=`; they win over the directives.
    pub options: Option<&'a AliasOptions>,
    /// `WSGIProcessGroup` for the location.
    pub process_group: Option<&'a str>,
    /// `WSGIApplicationGroup` for the location.
    pub application_group: Option<&'a str>,
    /// `WSGICallableObject` for the location.
    pub callable_object: Option<&'a str>,
    /// A `WSGIHandlerScript` serves the request: its entry point is fixed.
    pub handler_script: bool,
}

/// A request's process group (`""`: embedded), application group (`""`: the main
/// interpreter) and callable, expanded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    pub process_group: String,
    pub application_group: String,
    pub callable: String,
}

/// A `WSGIDispatchScript`'s overrides, expanded as the directives' values are (None: keep).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Choice {
    pub process_group: Option<String>,
    pub application_group: Option<String>,
    pub callable_object: Option<String>,
}

/// What may not run where.
#[derive(Debug, Default, Clone, Copy)]
pub struct Rules<'a> {
    /// `WSGIRestrictProcess`: the process groups (as expanded, `""` for embedded) allowed.
    pub restrict_process: Option<&'a [String]>,
    /// `WSGIRestrictEmbedded On`.
    pub embedded_restricted: bool,
}

/// Where the app runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// In this Apache child.
    Embedded,
    /// Handed to this daemon process group.
    Daemon { group: String },
}

/// The routing decision for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub transport: Transport,
    /// The interpreter: `""` is the main one (`%{GLOBAL}`).
    pub application_group: String,
    pub callable: String,
}

impl Route {
    /// The process group as `mod_wsgi.process_group` reports it (`""` embedded).
    pub fn process_group(&self) -> &str {
        match &self.transport {
            Transport::Embedded => "",
            Transport::Daemon { group } => group,
        }
    }
}

/// The configured names, expanded for this request: alias option, else directive, else
/// mod_wsgi's default (`%{GLOBAL}` process group, `%{RESOURCE}` application group,
/// `application`; a handler script's entry point is always `handle_request`).
pub fn configured(src: &Sources<'_>, ctx: &ExpandContext<'_>) -> Names {
    let pick = |from_alias: Option<&Option<String>>, from_dir: Option<&str>, default: &str| {
        from_alias
            .and_then(|o| o.clone())
            .or_else(|| from_dir.map(str::to_string))
            .unwrap_or_else(|| default.to_string())
    };
    let opts = src.options;
    Names {
        process_group: expand::expand_group(
            &pick(
                opts.map(|o| &o.process_group),
                src.process_group,
                "%{GLOBAL}",
            ),
            ctx,
        ),
        application_group: expand::expand_group(
            &pick(
                opts.map(|o| &o.application_group),
                src.application_group,
                "%{RESOURCE}",
            ),
            ctx,
        ),
        callable: if src.handler_script {
            // mod_wsgi fixes a handler script's entry point.
            "handle_request".to_string()
        } else {
            expand::expand_callable(
                &pick(
                    opts.map(|o| &o.callable_object),
                    src.callable_object,
                    "application",
                ),
                ctx.env,
            )
        },
    }
}

/// Routes a request: the configured names with the dispatch script's overrides, checked
/// against the restrictions (`script` names the app in the refusal).
pub fn route(
    configured: Names,
    choice: Choice,
    rules: &Rules<'_>,
    script: &str,
) -> Result<Route, Failure> {
    let process_group = choice.process_group.unwrap_or(configured.process_group);
    let application_group = choice
        .application_group
        .unwrap_or(configured.application_group);
    let callable = choice.callable_object.unwrap_or(configured.callable);
    if let Some(allowed) = rules.restrict_process {
        if !allowed.contains(&process_group) {
            return Err(Failure::ProcessRestricted {
                group: process_group,
                script: script.to_string(),
                allowed: allowed.to_vec(),
            });
        }
    }
    let transport = if !process_group.is_empty() {
        Transport::Daemon {
            group: process_group,
        }
    } else if rules.embedded_restricted {
        return Err(Failure::EmbeddedRestricted {
            script: script.to_string(),
        });
    } else {
        Transport::Embedded
    };
    Ok(Route {
        transport,
        application_group,
        callable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(var: &str) -> Option<String> {
        match var {
            "GROUP" => Some("from-env".into()),
            "NESTED" => Some("%{SERVER}".into()),
            "APP" => Some("make_app".into()),
            _ => None,
        }
    }

    fn ctx(port: u16, case_sensitive: bool) -> ExpandContext<'static> {
        ExpandContext {
            server_name: "www.example.com",
            port,
            host: Some("alias.example.com"),
            script_name: "/Shop",
            case_sensitive,
            env: &env,
        }
    }

    fn names(src: &Sources<'_>) -> Names {
        configured(src, &ctx(80, true))
    }

    fn embedded(names: Names) -> Route {
        route(names, Choice::default(), &Rules::default(), "/srv/app.wsgi").unwrap()
    }

    #[test]
    fn defaults_are_embedded_per_resource_application() {
        let r = embedded(names(&Sources::default()));
        assert_eq!(r.transport, Transport::Embedded);
        assert_eq!(r.process_group(), "");
        assert_eq!(r.application_group, "www.example.com|/Shop");
        assert_eq!(r.callable, "application");
    }

    #[test]
    fn global_is_the_main_interpreter() {
        let src = Sources {
            application_group: Some("%{GLOBAL}"),
            process_group: Some("%{GLOBAL}"),
            ..Default::default()
        };
        let r = embedded(names(&src));
        assert_eq!((r.process_group(), r.application_group.as_str()), ("", ""));
    }

    #[test]
    fn server_carries_a_port_other_than_80_and_443() {
        let src = Sources {
            application_group: Some("%{SERVER}"),
            ..Default::default()
        };
        assert_eq!(names(&src).application_group, "www.example.com");
        assert_eq!(
            configured(&src, &ctx(8080, true)).application_group,
            "www.example.com:8080"
        );
    }

    #[test]
    fn resource_follows_case_sensitivity() {
        let n = configured(&Sources::default(), &ctx(8080, false));
        assert_eq!(n.application_group, "www.example.com:8080|/shop");
    }

    #[test]
    fn env_names_groups_and_callable() {
        let src = Sources {
            process_group: Some("%{ENV:GROUP}"),
            application_group: Some("%{ENV:NESTED}"),
            callable_object: Some("%{ENV:APP}"),
            ..Default::default()
        };
        let r = embedded(names(&src));
        assert_eq!(
            r.transport,
            Transport::Daemon {
                group: "from-env".into()
            }
        );
        assert_eq!(r.application_group, "www.example.com");
        assert_eq!(r.callable, "make_app");
        // Unset: a group keeps the literal, a callable falls back to `application`.
        let unset = Sources {
            application_group: Some("%{ENV:UNSET}"),
            callable_object: Some("%{ENV:UNSET}"),
            ..Default::default()
        };
        let n = names(&unset);
        assert_eq!(n.application_group, "%{ENV:UNSET}");
        assert_eq!(n.callable, "application");
    }

    #[test]
    fn named_process_group_is_a_daemon_transport() {
        let src = Sources {
            process_group: Some("site"),
            application_group: Some("app"),
            ..Default::default()
        };
        let r = embedded(names(&src));
        assert_eq!(
            r.transport,
            Transport::Daemon {
                group: "site".into()
            }
        );
        assert_eq!(r.process_group(), "site");
        assert_eq!(r.application_group, "app");
    }

    #[test]
    fn alias_options_win_over_directives() {
        let opts = AliasOptions {
            process_group: Some("from-alias".into()),
            application_group: Some("%{GLOBAL}".into()),
            callable_object: Some("app".into()),
            ..Default::default()
        };
        let src = Sources {
            options: Some(&opts),
            process_group: Some("from-dir"),
            application_group: Some("dir-app"),
            callable_object: Some("dir_callable"),
            handler_script: false,
        };
        let r = embedded(names(&src));
        assert_eq!(r.process_group(), "from-alias");
        assert_eq!(r.application_group, "");
        assert_eq!(r.callable, "app");
    }

    #[test]
    fn handler_script_entry_point_is_fixed() {
        let src = Sources {
            callable_object: Some("other"),
            handler_script: true,
            ..Default::default()
        };
        assert_eq!(names(&src).callable, "handle_request");
    }

    #[test]
    fn dispatch_choice_overrides_the_configured_names() {
        let choice = Choice {
            process_group: Some("chosen".into()),
            application_group: None,
            callable_object: Some("picked".into()),
        };
        let r = route(
            names(&Sources::default()),
            choice,
            &Rules::default(),
            "/a.wsgi",
        )
        .unwrap();
        assert_eq!(r.process_group(), "chosen");
        assert_eq!(r.application_group, "www.example.com|/Shop");
        assert_eq!(r.callable, "picked");
    }

    #[test]
    fn restrict_process_refuses_other_groups_including_embedded() {
        let allowed = vec!["site".to_string()];
        let rules = Rules {
            restrict_process: Some(&allowed),
            embedded_restricted: false,
        };
        let daemon = |g: &str| Names {
            process_group: g.into(),
            ..Default::default()
        };
        assert!(route(daemon("site"), Choice::default(), &rules, "/a.wsgi").is_ok());
        assert_eq!(
            route(daemon("other"), Choice::default(), &rules, "/a.wsgi"),
            Err(Failure::ProcessRestricted {
                group: "other".into(),
                script: "/a.wsgi".into(),
                allowed: allowed.clone(),
            })
        );
        assert!(matches!(
            route(daemon(""), Choice::default(), &rules, "/a.wsgi"),
            Err(Failure::ProcessRestricted { .. })
        ));
        // A dispatch script's choice is checked too.
        let choice = Choice {
            process_group: Some("other".into()),
            ..Default::default()
        };
        assert!(route(daemon("site"), choice, &rules, "/a.wsgi").is_err());
        // %{GLOBAL} listed: embedded is allowed.
        let with_global = vec!["site".to_string(), String::new()];
        let rules = Rules {
            restrict_process: Some(&with_global),
            embedded_restricted: false,
        };
        assert!(route(daemon(""), Choice::default(), &rules, "/a.wsgi").is_ok());
    }

    #[test]
    fn restrict_embedded_refuses_only_embedded_requests() {
        let rules = Rules {
            restrict_process: None,
            embedded_restricted: true,
        };
        assert_eq!(
            route(Names::default(), Choice::default(), &rules, "/a.wsgi"),
            Err(Failure::EmbeddedRestricted {
                script: "/a.wsgi".into()
            })
        );
        let daemon = Names {
            process_group: "site".into(),
            ..Default::default()
        };
        assert!(route(daemon, Choice::default(), &rules, "/a.wsgi").is_ok());
    }
}
