//! `WSGIScriptAlias` / `WSGIScriptAliasMatch`: option parsing and URL prefix matching.

/// Options that may follow the target of a script alias.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct AliasOptions {
    pub process_group: Option<String>,
    pub application_group: Option<String>,
    pub callable_object: Option<String>,
    pub pass_authorization: Option<bool>,
}

/// How an alias matches the request URI.
#[derive(Debug, Clone, PartialEq)]
pub enum AliasMatch {
    /// A URL-path prefix, stored without trailing slashes (`/` is stored as the empty string).
    Prefix(String),
    /// An extended regular expression (compiled by the Apache layer; the handle is opaque
    /// here and owned by the configuration pool).
    Regex { pattern: String, compiled: usize },
}

/// One script alias entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptAlias {
    pub matcher: AliasMatch,
    /// File or directory the URL maps to (may contain `$1`… for regex aliases).
    pub target: String,
    pub options: AliasOptions,
}

const VALID: &str = "process-group=, application-group=, callable-object=, pass-authorization=";

/// Parses the `key=value` options after the target. Keys are case-insensitive.
pub fn parse_options(directive: &str, args: &[&str]) -> Result<AliasOptions, String> {
    let mut opts = AliasOptions::default();
    for arg in args {
        let (key, value) = super::words::option(directive, arg, VALID)?;
        match key.as_str() {
            "process-group" => opts.process_group = Some(value.to_string()),
            "application-group" => opts.application_group = Some(value.to_string()),
            "callable-object" => opts.callable_object = Some(value.to_string()),
            "pass-authorization" => {
                opts.pass_authorization = Some(super::parse_on_off(
                    &format!("{directive} pass-authorization="),
                    value,
                )?)
            }
            _ => {
                return Err(format!(
                    "{directive}: unknown option '{key}'; valid options are {VALID}"
                ));
            }
        }
    }
    Ok(opts)
}

/// Normalises an alias URL-path: runs of `/` collapse and trailing slashes go.
pub fn normalise_prefix(location: &str) -> String {
    let mut out = String::with_capacity(location.len());
    for c in location.chars() {
        if c == '/' && out.ends_with('/') {
            continue;
        }
        out.push(c);
    }
    while out.ends_with('/') {
        out.pop();
    }
    out
}

/// Matches a normalised prefix against a URI, segment-aware and tolerant of repeated
/// slashes in the URI. Returns the byte length of the URI consumed by the prefix.
pub fn match_prefix(prefix: &str, uri: &[u8]) -> Option<usize> {
    let p = prefix.as_bytes();
    let (mut i, mut j) = (0, 0);
    while i < p.len() {
        if j >= uri.len() {
            return None;
        }
        if p[i] == b'/' {
            if uri[j] != b'/' {
                return None;
            }
            while j < uri.len() && uri[j] == b'/' {
                j += 1;
            }
            i += 1;
        } else if p[i] == uri[j] {
            i += 1;
            j += 1;
        } else {
            return None;
        }
    }
    // The prefix must end on a segment boundary.
    if j < uri.len() && uri[j] != b'/' {
        return None;
    }
    Some(j)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_reject() {
        let o = parse_options(
            "WSGIScriptAlias",
            &[
                "process-group=%{GLOBAL}",
                "Application-Group=g",
                "pass-authorization=On",
            ],
        )
        .unwrap();
        assert_eq!(o.process_group.as_deref(), Some("%{GLOBAL}"));
        assert_eq!(o.application_group.as_deref(), Some("g"));
        assert_eq!(o.pass_authorization, Some(true));
        assert!(
            parse_options("W", &["bogus=1"])
                .unwrap_err()
                .contains("unknown option 'bogus'")
        );
        assert!(
            parse_options("W", &["noequals"])
                .unwrap_err()
                .contains("key=value")
        );
        assert!(parse_options("W", &["pass-authorization=maybe"]).is_err());
        assert!(
            parse_options("W", &["callable-object="])
                .unwrap_err()
                .contains("needs a value")
        );
    }

    #[test]
    fn prefixes() {
        assert_eq!(normalise_prefix("/"), "");
        assert_eq!(normalise_prefix("/a//b/"), "/a/b");
        assert_eq!(match_prefix("", b"/x"), Some(0));
        assert_eq!(match_prefix("", b"/"), Some(0));
        assert_eq!(match_prefix("/app", b"/app"), Some(4));
        assert_eq!(match_prefix("/app", b"/app/x"), Some(4));
        assert_eq!(match_prefix("/app", b"/apple"), None);
        assert_eq!(match_prefix("/a/b", b"//a///b/c"), Some(7));
        assert_eq!(match_prefix("/a/b", b"/a"), None);
    }
}
