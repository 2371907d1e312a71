//! The hook script directives: `WSGIAccessScript`, `WSGIAuthUserScript`,
//! `WSGIAuthGroupScript`, `WSGIDispatchScript` (a script and its application group) and
//! `WSGIHandlerScript` (a named Apache handler served by a script).

use super::alias;

/// A script that an Apache hook runs, in the application group it names.
#[derive(Debug, Clone, PartialEq)]
pub struct HookScript {
    pub path: String,
    /// `application-group=`; None runs it in the main interpreter (`%{GLOBAL}`).
    pub application_group: Option<String>,
}

/// A `WSGIHandlerScript` entry: `SetHandler name` runs `handle_request` from `path`.
#[derive(Debug, Clone, PartialEq)]
pub struct HandlerScript {
    pub name: String,
    pub path: String,
    pub options: alias::AliasOptions,
}

/// Parses `path [application-group=…]` (the access, auth and dispatch scripts accept only
/// that option, as in mod_wsgi).
pub fn parse_hook_script(directive: &str, args: &[&str]) -> Result<HookScript, String> {
    let Some((path, rest)) = args.split_first() else {
        return Err(format!(
            "{directive} needs a script path, then optional application-group="
        ));
    };
    if path.is_empty() {
        return Err(format!("{directive}: the script path is empty"));
    }
    let opts = alias::parse_options(directive, rest)?;
    if opts.process_group.is_some()
        || opts.callable_object.is_some()
        || opts.pass_authorization.is_some()
    {
        return Err(format!(
            "{directive}: the only option is application-group= (these scripts always run \
             in the Apache child)"
        ));
    }
    Ok(HookScript {
        path: path.to_string(),
        application_group: opts.application_group,
    })
}

/// Parses `name path [process-group=] [application-group=] [pass-authorization=]`.
pub fn parse_handler_script(directive: &str, args: &[&str]) -> Result<HandlerScript, String> {
    let [name, path, rest @ ..] = args else {
        return Err(format!(
            "{directive} needs a handler name and a script path, then optional options"
        ));
    };
    if name.is_empty() || path.is_empty() {
        return Err(format!(
            "{directive}: the handler name and path must not be empty"
        ));
    }
    let options = alias::parse_options(directive, rest)?;
    if options.callable_object.is_some() {
        return Err(format!(
            "{directive}: callable-object= is not an option here; the handler script's \
             callable is always handle_request"
        ));
    }
    Ok(HandlerScript {
        name: name.to_string(),
        path: path.to_string(),
        options,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_script_options() {
        let s = parse_hook_script("D", &["/a.py", "application-group=%{GLOBAL}"]).unwrap();
        assert_eq!(s.path, "/a.py");
        assert_eq!(s.application_group.as_deref(), Some("%{GLOBAL}"));
        assert_eq!(
            parse_hook_script("D", &["/a.py"])
                .unwrap()
                .application_group,
            None
        );
        assert!(parse_hook_script("D", &[]).is_err());
        let e = parse_hook_script("D", &["/a.py", "process-group=x"]).unwrap_err();
        assert!(e.contains("only option is application-group"), "{e}");
        assert!(parse_hook_script("D", &["/a.py", "bogus"]).is_err());
    }

    #[test]
    fn handler_script_options() {
        let h = parse_handler_script("H", &["my-handler", "/h.py", "application-group=g"]).unwrap();
        assert_eq!(h.name, "my-handler");
        assert_eq!(h.options.application_group.as_deref(), Some("g"));
        assert!(parse_handler_script("H", &["only-name"]).is_err());
        assert!(parse_handler_script("H", &["n", "/h.py", "callable-object=x"]).is_err());
    }
}
