//! Expansion of the `%{...}` names accepted by `WSGIApplicationGroup`, `WSGIProcessGroup`,
//! `WSGICallableObject` and the matching alias options.

/// What an expansion may look at for the current request.
pub struct ExpandContext<'a> {
    /// `ServerName` of the serving (virtual) server.
    pub server_name: &'a str,
    /// The port of the serving virtual host (never one taken from the client's `Host`:
    /// each distinct name can cost a sub-interpreter).
    pub port: u16,
    /// The request's `Host` (without port), if any.
    pub host: Option<&'a str>,
    /// SCRIPT_NAME for `%{RESOURCE}`.
    pub script_name: &'a str,
    /// Case-sensitive script names (`WSGICaseSensitivity`).
    pub case_sensitive: bool,
    /// Looks a variable up in request notes, then subprocess_env, then the process env.
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

fn with_port(name: &str, port: u16) -> String {
    if port == 80 || port == 443 || port == 0 {
        name.to_string()
    } else {
        format!("{name}:{port}")
    }
}

/// Expands a group name (application or process group). `%{GLOBAL}` becomes `""`.
pub fn expand_group(value: &str, ctx: &ExpandContext<'_>) -> String {
    expand_once(value, ctx, true)
}

fn expand_once(value: &str, ctx: &ExpandContext<'_>, allow_nested: bool) -> String {
    match value {
        "%{GLOBAL}" => String::new(),
        "%{SERVER}" => with_port(ctx.server_name, ctx.port),
        "%{HOST}" => with_port(ctx.host.unwrap_or(ctx.server_name), ctx.port),
        "%{RESOURCE}" => {
            let script = if ctx.case_sensitive {
                ctx.script_name.to_string()
            } else {
                ctx.script_name.to_lowercase()
            };
            format!("{}|{}", with_port(ctx.server_name, ctx.port), script)
        }
        _ => {
            if let Some(var) = value
                .strip_prefix("%{ENV:")
                .and_then(|v| v.strip_suffix('}'))
            {
                match (ctx.env)(var) {
                    Some(v) if allow_nested && v.starts_with("%{") && !v.starts_with("%{ENV:") => {
                        expand_once(&v, ctx, false)
                    }
                    Some(v) => v,
                    None => value.to_string(),
                }
            } else {
                value.to_string()
            }
        }
    }
}

/// Expands a callable-object name: only `%{ENV:var}`, falling back to `application`.
pub fn expand_callable(value: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    match value
        .strip_prefix("%{ENV:")
        .and_then(|v| v.strip_suffix('}'))
    {
        Some(var) => env(var).unwrap_or_else(|| "application".to_string()),
        None => value.to_string(),
    }
}

/// True when the name must be expanded per request (it is not a literal).
pub fn is_dynamic(value: &str) -> bool {
    value.contains("%{")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx<'a>(env: &'a dyn Fn(&str) -> Option<String>) -> ExpandContext<'a> {
        ExpandContext {
            server_name: "www.example.com",
            port: 8080,
            host: Some("alias.example.com"),
            script_name: "/Wsgi/App",
            case_sensitive: true,
            env,
        }
    }

    #[test]
    fn names() {
        let env = |k: &str| match k {
            "A" => Some("grp".to_string()),
            "B" => Some("%{SERVER}".to_string()),
            "C" => Some("%{ENV:A}".to_string()),
            _ => None,
        };
        let c = ctx(&env);
        assert_eq!(expand_group("%{GLOBAL}", &c), "");
        assert_eq!(expand_group("%{SERVER}", &c), "www.example.com:8080");
        assert_eq!(expand_group("%{HOST}", &c), "alias.example.com:8080");
        assert_eq!(
            expand_group("%{RESOURCE}", &c),
            "www.example.com:8080|/Wsgi/App"
        );
        assert_eq!(expand_group("%{ENV:A}", &c), "grp");
        assert_eq!(expand_group("%{ENV:B}", &c), "www.example.com:8080");
        assert_eq!(expand_group("%{ENV:C}", &c), "%{ENV:A}");
        assert_eq!(expand_group("%{ENV:NOPE}", &c), "%{ENV:NOPE}");
        assert_eq!(expand_group("literal", &c), "literal");
        let ci = ExpandContext {
            case_sensitive: false,
            port: 80,
            ..ctx(&env)
        };
        assert_eq!(
            expand_group("%{RESOURCE}", &ci),
            "www.example.com|/wsgi/app"
        );
    }

    #[test]
    fn callable() {
        let env = |k: &str| (k == "X").then(|| "app2".to_string());
        assert_eq!(expand_callable("%{ENV:X}", &env), "app2");
        assert_eq!(expand_callable("%{ENV:Y}", &env), "application");
        assert_eq!(expand_callable("main", &env), "main");
    }
}
