//! Splitting a directive's argument line into words the way Apache and mod_wsgi do, so a
//! configuration written for mod_wsgi reads the same here.
//!
//! Apache's word rule (`ap_getword_conf`): a word is a run of non-blank characters, or text
//! between matching `"` or `'` quotes (which may hold blanks); a backslash escapes the quote
//! character and itself. mod_wsgi reads `key=value` options by taking the key up to `=` and
//! then the value with that same word rule, so `process-group='%{GLOBAL}'` means
//! `process-group=%{GLOBAL}` and `home='/srv/my site'` keeps its blank.

/// Reads one word from the front of `line` with Apache's `ap_getword_conf` rules and
/// advances `line` past it and the blanks that follow. An exhausted line yields `""`.
pub fn next_word(line: &mut &str) -> String {
    let s = line.trim_start_matches(is_blank);
    let bytes = s.as_bytes();
    let Some(&first) = bytes.first() else {
        *line = s;
        return String::new();
    };
    let (word, rest) = if first == b'"' || first == b'\'' {
        let mut end = 1;
        while end < bytes.len() && bytes[end] != first {
            if bytes[end] == b'\\'
                && end + 1 < bytes.len()
                && (bytes[end + 1] == first || bytes[end + 1] == b'\\')
            {
                end += 2;
            } else {
                end += 1;
            }
        }
        let word = unescape(&s[1..end], Some(first));
        let rest = if end < bytes.len() {
            &s[end + 1..]
        } else {
            &s[end..]
        };
        (word, rest)
    } else {
        let end = s.find(is_blank).unwrap_or(s.len());
        (unescape(&s[..end], None), &s[end..])
    };
    *line = rest.trim_start_matches(is_blank);
    word
}

fn is_blank(c: char) -> bool {
    // apr_isspace: the C locale's white space.
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// `substring_conf`: a backslash before a backslash (or before the quote in use) is dropped.
fn unescape(s: &str, quote: Option<u8>) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() && (b[i + 1] == b'\\' || Some(b[i + 1]) == quote) {
            i += 1;
        }
        out.push(b[i]);
        i += 1;
    }
    // Only ASCII bytes were removed, so the rest is still UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

/// True for the shape of a mod_wsgi option name (`process-group`, `python-path`, …).
fn is_option_key(k: &str) -> bool {
    !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Splits a directive's argument line into words: positional words by Apache's word rule,
/// `key=value` options with the value read by that rule too (quotes removed), returned as
/// `key=value` strings. As in mod_wsgi, blanks after `=` are skipped (`process-group= x`
/// is `process-group=x`); a value is empty only at the end of the line. This is the one
/// tokenizer for every directive, options included.
pub fn split(line: &str) -> Vec<String> {
    let mut rest = line.trim_start_matches(is_blank);
    let mut out = Vec::new();
    while !rest.is_empty() {
        let token_end = rest.find(is_blank).unwrap_or(rest.len());
        let option = rest[..token_end]
            .find('=')
            .filter(|&eq| is_option_key(&rest[..eq]));
        match option {
            Some(eq) => {
                let key = &rest[..eq];
                let mut value_part = &rest[eq + 1..];
                let value = next_word(&mut value_part);
                out.push(format!("{key}={value}"));
                rest = value_part;
            }
            None => {
                // `WSGIPythonHome ""` has no argument at all, as with Apache's TAKE_ARGV.
                let word = next_word(&mut rest);
                if !(word.is_empty() && rest.is_empty()) {
                    out.push(word);
                }
            }
        }
    }
    out
}

/// One `key=value` word of [`split`]: the key in lower case (mod_wsgi's option names are
/// case-insensitive) and the value, which must not be empty. `usage` ends the error message.
pub fn option<'a>(
    directive: &str,
    word: &'a str,
    usage: &str,
) -> Result<(String, &'a str), String> {
    let Some((key, value)) = word.split_once('=') else {
        return Err(format!(
            "{directive}: invalid option '{word}'; options are key=value: {usage}"
        ));
    };
    if value.is_empty() {
        return Err(format!("{directive}: option '{key}' needs a value"));
    }
    Ok((key.to_ascii_lowercase(), value))
}

/// Removes the `>` that ends a section's opening line (`<WSGIInterpreterOptions …>`).
pub fn section_args<'a>(directive: &str, line: &'a str) -> Result<&'a str, String> {
    line.trim_end_matches(is_blank)
        .strip_suffix('>')
        .ok_or_else(|| format!("<{directive}> directive missing closing '>'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apache_word_rules() {
        let mut l = "  a \"b c\" 'd\\'e' \"f\\\\g\" h\\\\i '' tail";
        let words: Vec<String> = std::iter::from_fn(|| {
            if l.is_empty() {
                None
            } else {
                Some(next_word(&mut l))
            }
        })
        .collect();
        assert_eq!(words, ["a", "b c", "d'e", "f\\g", "h\\i", "", "tail"]);
        let mut unterminated = "'open ended";
        assert_eq!(next_word(&mut unterminated), "open ended");
        assert_eq!(unterminated, "");
    }

    #[test]
    fn options_unquoted() {
        assert_eq!(
            split("/x/handler.wsgi process-group='%{GLOBAL}' application-group=%{GLOBAL}"),
            [
                "/x/handler.wsgi",
                "process-group=%{GLOBAL}",
                "application-group=%{GLOBAL}"
            ]
        );
        assert_eq!(
            split("site home='/srv/my site' display-name=\"(wsgi:a b)\" threads=5"),
            [
                "site",
                "home=/srv/my site",
                "display-name=(wsgi:a b)",
                "threads=5"
            ]
        );
        assert_eq!(split("'/a b/x.wsgi' \"c d\""), ["/a b/x.wsgi", "c d"]);
        // mod_wsgi skips blanks before a value; only the end of the line leaves it empty.
        assert_eq!(split("callable-object= x y"), ["callable-object=x", "y"]);
        assert_eq!(split("k="), ["k="]);
        // Positional words holding '=' (a regex) keep their quotes' meaning.
        assert_eq!(split("^/a(=|b) /t"), ["^/a(=|b)", "/t"]);
        assert_eq!(split("\"\""), Vec::<String>::new());
        assert_eq!(split("\"\" x"), ["", "x"]);
        assert_eq!(split(""), Vec::<String>::new());
    }

    #[test]
    fn options() {
        assert_eq!(
            option("D", "Process-Group=a=b", "u").unwrap(),
            ("process-group".to_string(), "a=b")
        );
        assert!(
            option("D", "plain", "u")
                .unwrap_err()
                .contains("key=value: u")
        );
        assert!(
            option("D", "k=", "u")
                .unwrap_err()
                .contains("'k' needs a value")
        );
    }

    #[test]
    fn section_close() {
        assert_eq!(
            section_args("S", "process-group=a>").unwrap(),
            "process-group=a"
        );
        assert_eq!(section_args("S", ">").unwrap(), "");
        assert!(section_args("S", "x").unwrap_err().contains("closing '>'"));
    }
}
