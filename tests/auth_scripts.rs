//! WSGIAccessScript, WSGIAuthUserScript (authn provider `wsgi`, Basic and Digest),
//! WSGIAuthGroupScript (`Require wsgi-group`) with WSGIGroupAuthoritative,
//! WSGIDispatchScript and WSGIHandlerScript, beside Apache's own `Require` rules.
mod common;
use common::*;
use std::process::Command;

fn base64(data: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64(format!("{user}:{password}").as_bytes()))
}

fn get_as(s: &Server, path: &str, user: &str, password: &str) -> Response {
    s.request(
        "GET",
        path,
        &[("Authorization", &basic(user, password))],
        b"",
    )
}

fn auth_server(name: &str) -> Server {
    server(name).fragment("auth_scripts").start()
}

fn check_basic(s: &mut Server) {
    let r = s.get("/basic");
    assert_eq!(r.status, 401, "{}", r.describe());
    assert!(
        r.header("WWW-Authenticate")
            .is_some_and(|h| h.starts_with("Basic")),
        "{}",
        r.describe()
    );
    let r = get_as(s, "/basic", "alice", "secret");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(
        r.text(),
        "callable=application user=alice group=localhost:".to_string()
            + &s.port.to_string()
            + "|/basic"
    );
    let r = get_as(s, "/basic", "alice", "wrong");
    assert_eq!(r.status, 401, "{}", r.describe());
    s.expect_error(r.client_port, "AH01617");
    // None: the user is unknown to the script.
    let r = get_as(s, "/basic", "nobody", "x");
    assert_eq!(r.status, 401, "{}", r.describe());
    s.expect_error(r.client_port, "AH01618");
}

#[test]
fn basic_auth_through_check_password() {
    let mut s = auth_server("auth_basic");
    check_basic(&mut s);
    // A returned str names the authenticated user.
    let r = get_as(&s, "/basic", "renamed", "any");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert!(r.text().contains("user=alias-of-renamed"), "{}", r.text());
    // The cut-down environ (the script checks it and answers True only if it is right).
    let r = get_as(&s, "/basic", "envcheck", "x");
    assert_eq!(r.status, 200, "{}", r.describe()); // application-group= runs the script in that group's interpreter.
    let r = get_as(&s, "/basic-group", "groupcheck", "x");
    assert_eq!(r.status, 200, "{}", r.describe());
    let r = get_as(&s, "/basic", "groupcheck", "x");
    assert_eq!(r.status, 401, "{}", r.describe());
    s.expect_error(r.client_port, "AH01617");
}

#[test]
fn mod_ssl_functions_expire_with_their_request() {
    let s = server("auth_stash")
        .single_process()
        .fragment("auth_scripts")
        .start();
    assert_eq!(get_as(&s, "/basic", "stash", "x").status, 200);
    let r = get_as(&s, "/basic", "stale", "x");
    assert_eq!(
        r.status,
        200,
        "a kept mod_ssl.is_https still worked: {}",
        r.describe()
    );
}

#[test]
fn mod_ssl_functions_over_tls() {
    let certs = std::env::temp_dir().join(format!("rwsgi-auth-tls-{}", std::process::id()));
    std::fs::create_dir_all(&certs).unwrap();
    let (cert, key) = (certs.join("cert.pem"), certs.join("key.pem"));
    let ok = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl")
        .status
        .success();
    assert!(ok, "openssl could not make a test certificate");
    let tls_port = free_port();
    let s = server("auth_tls")
        .fragment("auth_scripts")
        .var("TLSPORT", &tls_port.to_string())
        .var("CERT", &cert.display().to_string())
        .var("KEY", &key.display().to_string())
        .conf(
            "LoadModule socache_shmcb_module /usr/lib/apache2/modules/mod_socache_shmcb.so\n\
             LoadModule ssl_module /usr/lib/apache2/modules/mod_ssl.so\n\
             Listen 127.0.0.1:@TLSPORT@\n\
             <VirtualHost 127.0.0.1:@TLSPORT@>\n\
             SSLEngine on\nSSLCertificateFile \"@CERT@\"\nSSLCertificateKeyFile \"@KEY@\"\n\
             </VirtualHost>",
        )
        .start();
    let out = Command::new("curl")
        .args([
            "-s",
            "-k",
            "--max-time",
            "10",
            "-u",
            "tls:x",
            "-w",
            "\n%{http_code}",
        ])
        .arg(format!("https://127.0.0.1:{tls_port}/basic"))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.ends_with("\n200"), "over TLS: {text}");
    assert!(text.contains("user=tls"), "{text}");
    drop(s);
    let _ = std::fs::remove_dir_all(&certs);
}

#[test]
fn basic_auth_under_prefork() {
    let mut s = server("auth_basic_prefork")
        .mpm(Mpm::Prefork)
        .fragment("auth_scripts")
        .start();
    check_basic(&mut s);
}

#[test]
fn exception_in_auth_script_is_500_with_traceback() {
    let mut s = auth_server("auth_raise");
    let r = get_as(&s, "/basic", "boom", "x");
    assert_eq!(r.status, 500, "{}", r.describe());
    let lines = s.expect_error(r.client_port, "ValueError: auth script failure on purpose");
    let text = lines.join("\n");
    assert!(text.contains("check_password"), "{text}");
    assert!(text.contains("auth_user.py"), "{text}");
    assert!(
        text.contains("ValueError: auth script failure on purpose"),
        "{text}"
    );
}

fn curl_digest(s: &Server, user: &str, password: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", "--digest", "-u"])
        .arg(format!("{user}:{password}"))
        .args(["-w", "\n%{http_code}"])
        .arg(format!("http://127.0.0.1:{}/digest", s.port))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn digest_auth_through_get_realm_hash() {
    let mut s = auth_server("auth_digest");
    // mod_auth_digest logs both refusals below; curl's client ports are not known here.
    s.allow_log("AH01794: user alice: password mismatch");
    s.allow_log("AH01790: user `nobody' in realm");
    let (code, body) = curl_digest(&s, "alice", "secret");
    assert_eq!(code, 200, "{body}");
    assert!(
        body.starts_with("callable=application user=alice "),
        "{body}"
    );
    let (code, _) = curl_digest(&s, "alice", "wrong");
    assert_eq!(code, 401);
    let (code, _) = curl_digest(&s, "nobody", "x");
    assert_eq!(code, 401);
}

#[test]
fn wsgi_group_with_valid_user_and_group_authoritative() {
    let mut s = auth_server("auth_group");
    let r = s.get("/group");
    assert_eq!(r.status, 401, "{}", r.describe());
    let r = get_as(&s, "/group", "alice", "secret");
    assert_eq!(r.status, 200, "{}", r.describe());
    // bob is valid but not an editor: the RequireAll fails.
    let r = get_as(&s, "/group", "bob", "hunter2");
    assert_eq!(r.status, 401, "{}", r.describe());
    s.expect_error(r.client_port, "user 'bob'");
}

/// mod_wsgi 4.9.4 on Apache 2.4 accepts WSGIGroupAuthoritative but ignores it; here Off
/// turns a failed group test into no verdict, so the section's other Require lines decide.
#[test]
fn group_authoritative_off_lets_other_require_lines_decide() {
    let s = auth_server("auth_group_off");
    let r = get_as(&s, "/groupoff", "bob", "hunter2");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert!(r.text().contains("user=bob"), "{}", r.text());
    let r = get_as(&s, "/groupoff", "alice", "secret");
    assert_eq!(r.status, 200, "{}", r.describe());
}

#[test]
fn access_script_by_host() {
    let mut s = auth_server("auth_access");
    let r = s.get("/acc-local");
    assert_eq!(r.status, 200, "{}", r.describe());
    let r = s.get("/acc-remote");
    assert_eq!(r.status, 403, "{}", r.describe());
    s.expect_error(r.client_port, "lient denied");
    // None: Apache's own Require lines decide.
    let r = s.get("/acc-none-granted");
    assert_eq!(r.status, 200, "{}", r.describe());
    let r = s.get("/acc-none-denied");
    assert_eq!(r.status, 403, "{}", r.describe());
    s.expect_error(r.client_port, "AH01630");
}

#[test]
fn dispatch_script_chooses_group_and_callable() {
    let mut s = auth_server("auth_dispatch");
    let port = s.port;
    let r = s.get("/disp");
    assert_eq!(
        (r.status, r.text()),
        (
            200,
            format!("callable=application user=- group=localhost:{port}|/disp")
        )
    );
    let r = s.get("/disp?grp");
    assert_eq!(
        (r.status, r.text()),
        (
            200,
            "callable=application user=- group=dispatched".to_string()
        )
    );
    let r = s.get("/disp?grp+other");
    assert_eq!(
        (r.status, r.text()),
        (200, "callable=other user=- group=dispatched".to_string())
    );
    let r = s.get("/disp?daemon");
    assert_eq!(r.status, 500, "{}", r.describe());
    s.expect_error(r.client_port, "somedaemon");
    let r = s.get("/disp?raise");
    assert_eq!(r.status, 500, "{}", r.describe());
    let lines = s
        .expect_error(r.client_port, "dispatch failure on purpose")
        .join("\n");
    assert!(lines.contains("in application_group"), "{lines}");
}

#[test]
fn handler_script_serves_its_handler_name() {
    let s = auth_server("auth_handler");
    let r = s.get("/h/anything.txt");
    assert_eq!(r.status, 200, "{}", r.describe());
    let t = r.text();
    assert!(t.contains("handler.py group=handlers file="), "{t}");
    assert!(t.ends_with("/anything.txt"), "{t}");
}

#[test]
fn auth_directives_refused_outside_directory_sections() {
    for line in [
        "WSGIAuthUserScript /x.py",
        "WSGIAccessScript /x.py",
        "WSGIAuthGroupScript /x.py",
        "WSGIGroupAuthoritative Off",
    ] {
        let t = server("auth_ctx").conf(line).config_test();
        assert!(
            !t.ok,
            "apache2 -t accepted {line:?} at server level:\n{}",
            t.output
        );
        assert!(
            t.output.contains("not allowed here"),
            "{line}: {}",
            t.output
        );
    }
    let t = server("auth_opt")
        .conf("<Location /x>\nWSGIAuthUserScript /x.py process-group=g\n</Location>")
        .config_test();
    assert!(!t.ok, "{}", t.output);
}

fn write_script(path: &std::path::Path, body: &str) {
    std::fs::write(path, body).expect("write script");
    // Make sure the mtime moves even within one clock tick of the previous write.
    let f = std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open script");
    let bump = std::time::SystemTime::now()
        + std::time::Duration::from_secs(1 + path.metadata().map(|m| m.len() % 7).unwrap_or(0));
    f.set_modified(bump).expect("set mtime");
}

fn password_script(password: &str) -> String {
    format!("def check_password(environ, user, password):\n    return password == '{password}'\n")
}

fn reload_server(name: &str, reloading: &str) -> Server {
    server(name)
        .single_process()
        .conf(&format!(
            "LoadModule auth_basic_module /usr/lib/apache2/modules/mod_auth_basic.so\n\
             LoadModule authz_user_module /usr/lib/apache2/modules/mod_authz_user.so\n\
             WSGIScriptAlias /r \"@APPS@/auth/app.wsgi\"\n\
             <Location /r>\n\
             AuthType Basic\nAuthName r\nAuthBasicProvider wsgi\n\
             WSGIAuthUserScript \"@DATA@/check.py\"\n\
             WSGIScriptReloading {reloading}\n\
             Require valid-user\n\
             </Location>"
        ))
        .allow_log("AH01617")
        .start()
}

#[test]
fn edited_auth_script_is_reloaded() {
    let s = reload_server("auth_reload", "On");
    let script = s.data.join("check.py");
    write_script(&script, &password_script("one"));
    assert_eq!(get_as(&s, "/r", "u", "one").status, 200);
    write_script(&script, &password_script("two"));
    assert_eq!(get_as(&s, "/r", "u", "two").status, 200);
    assert_eq!(get_as(&s, "/r", "u", "one").status, 401);
}

#[test]
fn auth_script_not_reloaded_with_reloading_off() {
    let s = reload_server("auth_noreload", "Off");
    let script = s.data.join("check.py");
    write_script(&script, &password_script("one"));
    assert_eq!(get_as(&s, "/r", "u", "one").status, 200);
    write_script(&script, &password_script("two"));
    assert_eq!(get_as(&s, "/r", "u", "one").status, 200);
    assert_eq!(get_as(&s, "/r", "u", "two").status, 401);
}

#[test]
fn auth_script_from_htaccess_with_allowoverride_authconfig() {
    let mut s = server("auth_htaccess")
        .conf(
            "LoadModule auth_basic_module /usr/lib/apache2/modules/mod_auth_basic.so\n\
             LoadModule authz_user_module /usr/lib/apache2/modules/mod_authz_user.so\n\
             Alias /ht/ \"@DATA@/ht/\"\n\
             <Directory \"@DATA@/ht\">\nAllowOverride AuthConfig\n</Directory>",
        )
        .start();
    let dir = s.data.join("ht");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("page.txt"), "protected\n").unwrap();
    let apps = s.apps.join("auth/auth_user.py");
    std::fs::write(
        dir.join(".htaccess"),
        format!(
            "AuthType Basic\nAuthName ht\nAuthBasicProvider wsgi\n\
             WSGIAuthUserScript \"{}\"\nRequire valid-user\n",
            apps.display()
        ),
    )
    .unwrap();
    let r = s.get("/ht/page.txt");
    assert_eq!(r.status, 401, "{}", r.describe());
    let r = get_as(&s, "/ht/page.txt", "bob", "hunter2");
    assert_eq!((r.status, r.text()), (200, "protected\n".to_string()));
    let r = get_as(&s, "/ht/page.txt", "bob", "nope");
    assert_eq!(r.status, 401);
    s.expect_error(r.client_port, "AH01617");
}

#[test]
fn providers_without_their_script() {
    let mut s = auth_server("auth_noscript");
    if s.module.is_reference() {
        // mod_wsgi logs these against the server, without the client.
        s.allow_log("authentication script not provided");
        s.allow_log("authorization script not provided");
        s.allow_log("AH01631");
    }
    // No WSGIAuthUserScript: nothing can check the password.
    let r = get_as(&s, "/noscript", "alice", "secret");
    assert_eq!(r.status, 500, "{}", r.describe());
    // No WSGIAuthGroupScript: the user is in no group, so access is refused.
    let r2 = get_as(&s, "/nogroupscript", "alice", "secret");
    assert_eq!(r2.status, 401, "{}", r2.describe());
    if !s.module.is_reference() {
        s.expect_error(r.client_port, "WSGIAuthUserScript");
        s.expect_error(r2.client_port, "WSGIAuthGroupScript");
    }
}
