//! What bounds the number of Python sub-interpreters in an Apache child: application group
//! names use the virtual host's port, never the port a client writes in `Host`.
mod common;
use common::*;

const APP: &str = "@APPS@/interp_limits.wsgi";

/// GET `path` with the given `Host` header on a fresh connection.
fn get_host(s: &Server, path: &str, host: &str) -> Response {
    s.raw(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())
}

fn json_ok(r: &Response, what: &str) -> Json {
    assert_eq!(r.status, 200, "{what}: {}", r.describe());
    r.json()
}

/// Under mod_wsgi 4.9.4 (and before this change) every distinct port in `Host` made a new
/// `%{RESOURCE}` group, so a client could create interpreters at will: 300 requests grew
/// the child by hundreds of MB. Deliberate difference: the group uses the vhost's port.
#[test]
fn host_port_does_not_make_new_interpreters() {
    let s = server("il_hostport")
        .single_process()
        .threads(4)
        .conf(&format!("WSGIScriptAlias /res \"{APP}\""))
        .conf(&format!(
            "WSGIScriptAlias /srv \"{APP}\" application-group=%{{SERVER}}"
        ))
        .conf(&format!(
            "WSGIScriptAlias /host \"{APP}\" application-group=%{{HOST}}"
        ))
        .conf(&format!(
            "WSGIScriptAlias /global \"{APP}\" application-group=%{{GLOBAL}}"
        ))
        .start();
    let before = json_ok(&s.get("/global"), "/global");
    let mut groups = Vec::new();
    for port in 20001..=20300 {
        let r = get_host(&s, "/res", &format!("localhost:{port}"));
        groups.push(json_ok(&r, "/res").s("group").to_string());
    }
    let after = json_ok(&s.get("/global"), "/global");
    assert_eq!(before.n("pid"), after.n("pid"), "the child was replaced");
    let grown_kb = after.n("rss_kb") - before.n("rss_kb");
    eprintln!(
        "child RSS: {} kB before, {} kB after 300 distinct Host ports (+{grown_kb} kB); \
         {} interpreters",
        before.n("rss_kb"),
        after.n("rss_kb"),
        after.n("interpreters")
    );
    let want = format!("localhost:{}|/res", s.port);
    assert!(
        groups.iter().all(|g| *g == want),
        "groups named after the client's Host port: {:?}",
        &groups[..3]
    );
    assert_eq!(after.n("interpreters"), 2.0, "main + the one /res group");
    assert!(grown_kb < 32.0 * 1024.0, "child grew by {grown_kb} kB");
    let srv = json_ok(&get_host(&s, "/srv", "localhost:20001"), "/srv");
    assert_eq!(srv.s("group"), format!("localhost:{}", s.port));
    let host = json_ok(&get_host(&s, "/host", "other.example:20002"), "/host");
    assert_eq!(host.s("group"), format!("other.example:{}", s.port));
    assert_eq!(host.s("module_group"), host.s("group"));
}

/// A `ServerName` with a port names the group with that port, whatever port the client
/// wrote or connected to (the port the virtual host serves).
#[test]
fn servername_port_names_the_group() {
    let s = server("il_vhost")
        .single_process()
        .conf(&format!(
            "<VirtualHost 127.0.0.1:@PORT@>\n  ServerName localhost\n  \
             WSGIScriptAlias /res \"{APP}\"\n</VirtualHost>\n\
             <VirtualHost 127.0.0.1:@PORT@>\n  ServerName vh.test:8123\n  \
             WSGIScriptAlias /res \"{APP}\"\n</VirtualHost>"
        ))
        .start();
    for host in ["vh.test", "vh.test:20001", "vh.test:8123"] {
        let j = json_ok(&get_host(&s, "/res", host), host);
        assert_eq!(j.s("group"), "vh.test:8123|/res", "Host: {host}");
    }
    let j = json_ok(&get_host(&s, "/res", "localhost:20002"), "localhost");
    assert_eq!(j.s("group"), format!("localhost:{}|/res", s.port));
}
