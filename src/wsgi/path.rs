//! SCRIPT_NAME / PATH_INFO from Apache's decoded URI and path info.

/// Collapses runs of `/` into one.
pub fn collapse_slashes(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for &b in s {
        if b == b'/' && out.last() == Some(&b'/') {
            continue;
        }
        out.push(b);
    }
    out
}

/// Length of the part of `uri` that precedes `path_info` (which Apache derived from the
/// same URI, possibly with slashes merged). Comparison runs from the end, slash-tolerant.
pub fn script_name_len(uri: &[u8], path_info: &[u8]) -> usize {
    if path_info.is_empty() {
        return uri.len();
    }
    let (mut i, mut j) = (uri.len(), path_info.len());
    while i > 0 && j > 0 {
        let (a, b) = (uri[i - 1], path_info[j - 1]);
        if a == b'/' && b == b'/' {
            while i > 0 && uri[i - 1] == b'/' {
                i -= 1;
            }
            while j > 0 && path_info[j - 1] == b'/' {
                j -= 1;
            }
        } else if a == b {
            i -= 1;
            j -= 1;
        } else {
            break;
        }
    }
    // If path_info did not fully match (odd rewrites), keep the URI as SCRIPT_NAME's source.
    if j > 0 { uri.len() } else { i }
}

/// SCRIPT_NAME and PATH_INFO as WSGI sees them (`//` collapsed in both).
pub fn split(uri: &[u8], path_info: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let n = script_name_len(uri, path_info);
    let script = collapse_slashes(&uri[..n]);
    let script = if script == b"/" { Vec::new() } else { script };
    (script, collapse_slashes(path_info))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits() {
        assert_eq!(
            split(b"/sub/a b/c", b"/a b/c"),
            (b"/sub".to_vec(), b"/a b/c".to_vec())
        );
        assert_eq!(split(b"/", b"/"), (b"".to_vec(), b"/".to_vec()));
        assert_eq!(split(b"/app", b""), (b"/app".to_vec(), b"".to_vec()));
        assert_eq!(
            split(b"//sub//x//y", b"/x/y"),
            (b"/sub".to_vec(), b"/x/y".to_vec())
        );
        assert_eq!(
            split(b"/sub/x", b"/zzz"),
            (b"/sub/x".to_vec(), b"/zzz".to_vec())
        );
    }
}
