//! Directive parity with mod_wsgi 4.9 to 6.x: every directive loads in its contexts, quoted
//! option values read as Apache reads words, bad values and wrong contexts fail `apache2 -t`
//! naming the directive, directives without effect warn once, trusted proxy headers,
//! `WSGIPassApacheRequest` and `.htaccess` use.
mod common;
use common::*;
use std::fs;
use std::time::{Duration, Instant};

/// Directives accepted without effect here, each warned about once at start-up.
const NO_EFFECT: &[&str] = &[
    "WSGIVerboseDebugging",
    "WSGIPerInterpreterGIL",
    "WSGIFreeThreading",
    "WSGITelemetryService",
    "WSGISlowRequests",
    "WSGITelemetryOptions",
    "WSGINewRelicConfigFile",
    "WSGINewRelicEnvironment",
    "WSGIErrorOverride",
    "WSGILazyInitialization",
    "WSGIAcceptMutex",
];

/// The lines that use every directive without effect (and turn each on where On/Off).
const NO_EFFECT_CONF: &str = "\
WSGIVerboseDebugging On
WSGIPerInterpreterGIL On
WSGIFreeThreading On
WSGITelemetryService unix:/run/rwsgi-telemetry.sock interval=5
WSGISlowRequests 2.5
WSGITelemetryOptions +CaptureUserAgent
WSGINewRelicConfigFile /etc/newrelic.ini
WSGINewRelicEnvironment production
WSGILazyInitialization Off
WSGIAcceptMutex flock
<WSGIInterpreterOptions process-group='%{GLOBAL}'>
    WSGISwitchInterval 0.01
</WSGIInterpreterOptions>
<WSGIInterpreterOptions process-group='%{GLOBAL}' application-group=%{GLOBAL}>
    WSGIPerInterpreterGIL Off
    WSGIFreeThreading Off
    WSGIPythonPath \"/tmp\"
    WSGIRestrictStdin On
    WSGIRestrictStdout Off
    WSGIRestrictSignal On
</WSGIInterpreterOptions>
<Location /x>
    WSGIErrorOverride On
    WSGIIgnoreActivity On
</Location>";

/// Every directive of this module's own (daemon mode and auth hooks have their own tests).
const ALL_CONF: &str = "\
WSGIPythonHome /usr
WSGIPythonPath \"@APPS@/sitedir\"
WSGIPythonOptimize 1
WSGIPythonHashSeed 42
WSGIPythonWarnings ignore::DeprecationWarning
WSGIDontWriteBytecode On
WSGIPythonEggs /tmp
WSGISwitchInterval 0.005
WSGIRestrictStdin On
WSGIRestrictStdout Off
WSGIRestrictSignal On
WSGICaseSensitivity On
WSGIDestroyInterpreter On
WSGIServerMetrics On
WSGIMaximumInterpreters 20
WSGIImportScript '@APPS@/preload.wsgi' process-group='%{GLOBAL}' application-group=%{GLOBAL}
WSGIScriptAlias /a '@APPS@/environ.wsgi' process-group='%{GLOBAL}' application-group=\"%{GLOBAL}\" callable-object='application' pass-authorization=Off
WSGIScriptAliasMatch ^/m/([a-z]+) \"@APPS@/$1.wsgi\" application-group='%{RESOURCE}'
WSGITrustedProxyHeaders X-Forwarded-For X-Forwarded-Proto
WSGITrustedProxies 10.0.0.0/8 192.168.0.0/255.255.0.0 ::1
WSGISocketPrefix run/wsgi
WSGISocketRotation Off
WSGIRestrictEmbedded Off
<Location /a>
    WSGICallableObject application
    WSGIApplicationGroup %{GLOBAL}
    WSGIPassAuthorization On
    WSGIChunkedRequest On
    WSGIMapHEADToGET Auto
    WSGIScriptReloading Off
    WSGIEnableSendfile On
    WSGIPassApacheRequest On
    WSGITrustedProxyHeaders X-Real-IP
    WSGITrustedProxies 10.1
    WSGIRestrictProcess %{GLOBAL} other
</Location>";

/// Every `WSGIDaemonProcess` option of mod_wsgi's parser with a valid value that is harmless
/// here: limits far above what the test uses, the Apache user, existing directories.
/// `script-user=` and `script-group=` exclude each other, so the second one is on a group of
/// its own (`DAEMON_SCRIPT_GROUP`).
const DAEMON_OPTIONS: &[(&str, &str)] = &[
    ("processes", "1"),
    ("threads", "3"),
    ("user", "www-data"),
    ("group", "www-data"),
    ("supplementary-groups", "www-data"),
    ("umask", "0022"),
    ("home", "/tmp"),
    ("chroot", "/"),
    ("lang", "C.UTF-8"),
    ("locale", "C.UTF-8"),
    ("python-home", "/usr"),
    ("python-path", "@APPS@/sitedir"),
    ("python-eggs", "/tmp"),
    ("switch-interval", "0.004"),
    ("display-name", "%{GROUP}"),
    ("maximum-requests", "1000"),
    ("restart-interval", "3600"),
    ("cpu-time-limit", "3600"),
    ("cpu-priority", "0"),
    ("memory-limit", "4294967296"),
    ("virtual-memory-limit", "17179869184"),
    ("stack-size", "1048576"),
    ("inactivity-timeout", "3600"),
    ("request-timeout", "60"),
    ("interrupt-timeout", "5"),
    ("deadlock-timeout", "60"),
    ("startup-timeout", "15"),
    ("graceful-timeout", "15"),
    ("eviction-timeout", "10"),
    ("shutdown-timeout", "5"),
    ("connect-timeout", "15"),
    ("socket-timeout", "60"),
    ("queue-timeout", "45"),
    ("listen-backlog", "100"),
    ("socket-user", "www-data"),
    ("send-buffer-size", "65536"),
    ("receive-buffer-size", "65536"),
    ("header-buffer-size", "32768"),
    ("response-buffer-size", "65536"),
    ("response-socket-timeout", "30"),
    ("response-flush-delay", "5"),
    // The test apps are copied by root, 0644 in 0755 directories.
    ("script-user", "root"),
    ("server-metrics", "On"),
];

/// The second group: `script-group=`, which `script-user=` excludes.
const DAEMON_SCRIPT_GROUP: &str =
    "WSGIDaemonProcess every-script-group threads=1 script-group=root";

/// The options of reference section 2 (mod_wsgi's `WSGIDaemonProcess` parser).
const REFERENCE_DAEMON_OPTIONS: &str = "processes threads user group supplementary-groups umask \
    home chroot lang locale python-home python-path python-eggs switch-interval display-name \
    maximum-requests restart-interval cpu-time-limit cpu-priority memory-limit \
    virtual-memory-limit stack-size inactivity-timeout request-timeout interrupt-timeout \
    deadlock-timeout startup-timeout graceful-timeout eviction-timeout shutdown-timeout \
    connect-timeout socket-timeout queue-timeout listen-backlog socket-user send-buffer-size \
    receive-buffer-size header-buffer-size response-buffer-size response-socket-timeout \
    response-flush-delay script-user script-group server-metrics";

/// Both daemon groups, and a URL served by each.
fn daemon_conf() -> String {
    let opts: Vec<String> = DAEMON_OPTIONS
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!(
        "WSGIDaemonProcess every {}\n{DAEMON_SCRIPT_GROUP}\n\
         WSGIScriptAlias /every \"@APPS@/daemon.wsgi\" process-group=every\n\
         WSGIScriptAlias /every-script-group \"@APPS@/daemon.wsgi\" \
         process-group=every-script-group",
        opts.join(" ")
    )
}

/// Expected to FAIL under mod_wsgi 4.9.4, which lacks the 6.x directives.
#[test]
fn every_directive_passes_config_test_and_the_no_effect_ones_say_so() {
    for o in REFERENCE_DAEMON_OPTIONS.split_whitespace() {
        assert!(
            DAEMON_OPTIONS.iter().any(|(k, _)| *k == o)
                || DAEMON_SCRIPT_GROUP.contains(&format!(" {o}=")),
            "WSGIDaemonProcess option {o} is not used"
        );
    }
    let all = || {
        server("dir_all")
            .conf(ALL_CONF)
            .conf(&daemon_conf())
            .conf(NO_EFFECT_CONF)
    };
    let t = all().config_test();
    assert!(t.ok, "apache2 -t failed:\n{}", t.output);
    assert!(t.output.contains("Syntax OK"), "{}", t.output);
    if !module().is_reference() {
        // WSGIErrorOverride acts here: the configuration has daemon process groups.
        for d in NO_EFFECT.iter().filter(|d| **d != "WSGIErrorOverride") {
            let n = t
                .output
                .lines()
                .filter(|l| l.contains(&format!("RWSGI0430: {d} ")))
                .count();
            assert_eq!(n, 1, "{d} warned {n} times:\n{}", t.output);
        }
        // Directives that do act are not reported.
        for d in [
            "WSGITrusted",
            "WSGIIgnoreActivity",
            "WSGIErrorOverride",
            "<WSGIInterpreterOptions>",
        ] {
            assert!(
                !t.output.contains(&format!("RWSGI0430: {d}")),
                "{}",
                t.output
            );
        }
    }

    // The same configuration starts and serves through both daemon groups.
    let srv = all().start();
    for (url, group) in [
        ("/every/pid", "every"),
        ("/every-script-group/pid", "every-script-group"),
    ] {
        let r = srv.get(url);
        assert_eq!(r.status, 200, "{url}: {}", r.describe());
        let j = r.json();
        assert_eq!(j.s("process_group"), group, "{url}");
        assert!(j.b("multithread") == (group == "every"), "{url}: {j}");
    }
    let r = srv.get("/a");
    assert_eq!(r.status, 200, "{}", r.describe());
}

/// Expected to FAIL under mod_wsgi 4.9.4, which lacks the 6.x directives.
#[test]
fn no_effect_directives_warn_once_in_the_error_log_at_start() {
    let srv = server("dir_warn")
        .conf(NO_EFFECT_CONF)
        // The same directive in a second place is still one warning.
        .conf("<Location /y>\n    WSGIErrorOverride On\n</Location>")
        .conf("WSGIScriptAlias /hello \"@APPS@/hello.wsgi\"")
        .start();
    assert_eq!(srv.get("/hello").status, 200);
    if srv.module.is_reference() {
        return;
    }
    let log = srv.error_log_text();
    for d in NO_EFFECT {
        let n = log
            .lines()
            .filter(|l| l.contains(&format!("RWSGI0430: {d} ")) && l.contains(":warn]"))
            .count();
        assert_eq!(n, 1, "{d} warned {n} times:\n{log}");
    }
    assert!(
        log.contains("WSGIPerInterpreterGIL On has no effect: Python 3.11"),
        "{log}"
    );
}

// ---- invalid usages ----------------------------------------------------------------------------

/// (directive the message must name, config text).
const BAD: &[(&str, &str)] = &[
    ("WSGITrustedProxyHeaders", "WSGITrustedProxyHeaders X-Bogus"),
    ("WSGITrustedProxyHeaders", "WSGITrustedProxyHeaders"),
    ("WSGITrustedProxies", "WSGITrustedProxies proxy.example.org"),
    ("WSGITrustedProxies", "WSGITrustedProxies 10.0.0.0/33"),
    ("WSGIErrorOverride", "WSGIErrorOverride maybe"),
    ("WSGIIgnoreActivity", "WSGIIgnoreActivity 1"),
    ("WSGIPassApacheRequest", "WSGIPassApacheRequest yes"),
    ("WSGIVerboseDebugging", "WSGIVerboseDebugging loud"),
    ("WSGIPerInterpreterGIL", "WSGIPerInterpreterGIL On Off"),
    ("WSGIFreeThreading", "WSGIFreeThreading"),
    (
        "WSGITelemetryService",
        "WSGITelemetryService tcp:127.0.0.1:9",
    ),
    (
        "WSGITelemetryService",
        "WSGITelemetryService unix:/x interval=0",
    ),
    ("WSGISlowRequests", "WSGISlowRequests -5"),
    (
        "WSGITelemetryOptions",
        "WSGITelemetryOptions CaptureEverything",
    ),
    ("WSGINewRelicConfigFile", "WSGINewRelicConfigFile"),
    ("WSGISocketPrefix", "WSGISocketPrefix"),
    ("WSGISocketRotation", "WSGISocketRotation sometimes"),
    ("WSGIRestrictEmbedded", "WSGIRestrictEmbedded maybe"),
    (
        "WSGIInterpreterOptions",
        "<WSGIInterpreterOptions bogus=1>\n</WSGIInterpreterOptions>",
    ),
    (
        "WSGIScriptAlias",
        "<WSGIInterpreterOptions>\n    WSGIScriptAlias /x /y.wsgi\n</WSGIInterpreterOptions>",
    ),
    (
        "WSGIPerInterpreterGIL",
        "<WSGIInterpreterOptions>\n    WSGIPerInterpreterGIL maybe\n</WSGIInterpreterOptions>",
    ),
    (
        "WSGISwitchInterval",
        "<WSGIInterpreterOptions application-group=a>\n    WSGISwitchInterval 0.01\n</WSGIInterpreterOptions>",
    ),
    (
        "WSGIInterpreterOptions",
        "<VirtualHost 127.0.0.1:@PORT@>\n<WSGIInterpreterOptions>\n</WSGIInterpreterOptions>\n</VirtualHost>",
    ),
    (
        "WSGIPerInterpreterGIL",
        "<VirtualHost 127.0.0.1:@PORT@>\n    WSGIPerInterpreterGIL Off\n</VirtualHost>",
    ),
    (
        "WSGITelemetryService",
        "<Location /x>\n    WSGITelemetryService unix:/run/t.sock\n</Location>",
    ),
    (
        "WSGIImportScript",
        "<Location /x>\n    WSGIImportScript /x.wsgi process-group=%{GLOBAL} application-group=%{GLOBAL}\n</Location>",
    ),
    (
        "WSGIImportScript",
        "WSGIImportScript \"@APPS@/preload.wsgi\" process-group='nope' application-group=%{GLOBAL}",
    ),
    (
        "WSGIImportScript",
        "WSGIImportScript \"@APPS@/preload.wsgi\" process-group='%{GLOBAL}'",
    ),
    (
        "WSGIScriptAlias",
        "WSGIScriptAlias /x \"@APPS@/hello.wsgi\" 'process-group'=x",
    ),
    ("WSGISocketPrefix", "WSGISocketPrefix no-such-dir/wsgi"),
    ("WSGISocketPrefix", "WSGISocketPrefix logs/error.log/wsgi"),
    ("WSGISocketPrefix", "WSGISocketPrefix run/a run/b"),
    (
        "WSGISocketPrefix",
        "<VirtualHost 127.0.0.1:@PORT@>\n    WSGISocketPrefix run/wsgi\n</VirtualHost>",
    ),
    ("WSGISocketRotation", "WSGISocketRotation sometimes"),
    (
        "WSGISocketRotation",
        "<Location /x>\n    WSGISocketRotation Off\n</Location>",
    ),
    ("WSGIAcceptMutex", "WSGIAcceptMutex spinlock"),
    ("WSGIAcceptMutex", "WSGIAcceptMutex"),
    ("WSGIRestrictProcess", "WSGIRestrictProcess"),
    (
        "WSGIRestrictEmbedded",
        "<Location /x>\n    WSGIRestrictEmbedded On\n</Location>",
    ),
    ("WSGIRestrictEmbedded", "WSGIRestrictEmbedded maybe"),
];

/// Expected to FAIL under mod_wsgi 4.9.4: it lacks the 6.x directives, accepts unknown proxy
/// header names and does not name the directive for bad options.
#[test]
fn invalid_usages_fail_config_test_naming_the_directive() {
    let mut wrong = Vec::new();
    for (directive, text) in BAD {
        let t = server("dir_bad").conf(text).config_test();
        // "Invalid command" would name the directive too, but means it is unknown.
        if t.ok
            || !t.output.contains("Syntax error")
            || !t.output.contains(directive)
            || t.output.contains("Invalid command")
        {
            wrong.push(format!("{text:?} -> ok={} {}", t.ok, t.output.trim()));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} not rejected with the directive named:\n{}",
        wrong.len(),
        BAD.len(),
        wrong.join("\n")
    );
}

// ---- quoted option values ----------------------------------------------------------------------

/// mod_wsgi-express writes `process-group='%{GLOBAL}'`; mod_wsgi reads option values with
/// Apache's word rules, so the quotes are not part of the value.
#[test]
fn quoted_option_values_are_unquoted() {
    let srv = server("dir_quoted")
        .single_process()
        .conf(
            "WSGIImportScript '@APPS@/preload.wsgi' process-group='%{GLOBAL}' \
             application-group=%{GLOBAL}",
        )
        .conf(
            "WSGIScriptAlias /q '@APPS@/environ.wsgi' process-group='%{GLOBAL}' \
             application-group=\"my group\" callable-object='application'",
        )
        .start();
    let child = srv.child_pids()[0];
    let deadline = Instant::now() + Duration::from_secs(5);
    let marker = srv.data.join(format!("preload-{child}-main"));
    while !marker.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(marker.exists(), "the quoted WSGIImportScript did not run");
    let r = srv.get("/q");
    assert_eq!(r.status, 200, "{}", r.describe());
    let j = r.json();
    let e = j.at("environ");
    assert_eq!(e.s("mod_wsgi.process_group"), "");
    assert_eq!(e.s("mod_wsgi.application_group"), "my group");
    assert_eq!(e.s("mod_wsgi.callable_object"), "application");
}

// ---- trusted proxy headers ---------------------------------------------------------------------

const PROXY_HEADERS: &str = "X-Forwarded-For X-Forwarded-Host X-Forwarded-Port \
                             X-Forwarded-Proto X-Forwarded-Server X-Script-Name";

fn proxied(srv: &Server, path: &str) -> Json {
    let r = srv.request(
        "GET",
        path,
        &[
            ("X-Forwarded-For", "203.0.113.9, 127.0.0.1"),
            ("X-Real-IP", "198.51.100.1"),
            ("X-Forwarded-Host", "www.example.org"),
            ("X-Host", "evil.example"),
            ("X-Forwarded-Port", "8443"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-SSL", "off"),
            ("X-Forwarded-Server", "front.example.org"),
            ("X-Script-Name", "/mnt"),
        ],
        b"",
    );
    assert_eq!(r.status, 200, "{path}: {}", r.describe());
    r.json()
}

/// Expected to FAIL under mod_wsgi 4.9.4, which leaves `X-Forwarded-Port` and
/// `X-Forwarded-Server` from an untrusted peer in the environ; mod_rwsgi strips every
/// configured proxy header then (everything else matches 4.9.4).
#[test]
fn trusted_proxy_headers_from_trusted_and_untrusted_peers() {
    let srv = server("dir_proxy")
        .conf(&format!(
            "WSGIScriptAlias /trusted \"@APPS@/environ.wsgi\"\n<Location /trusted>\n  \
             WSGITrustedProxyHeaders {PROXY_HEADERS}\n  WSGITrustedProxies 127.0.0.1\n</Location>"
        ))
        // Only 10.0.0.1 is trusted; the test peer is 127.0.0.1 (nothing is sent to 10.x).
        .conf(&format!(
            "WSGIScriptAlias /untrusted \"@APPS@/environ.wsgi\"\n<Location /untrusted>\n  \
             WSGITrustedProxyHeaders {PROXY_HEADERS}\n  WSGITrustedProxies 10.0.0.1\n</Location>"
        ))
        .conf("WSGIScriptAlias /none \"@APPS@/environ.wsgi\"")
        .start();
    let port = srv.port.to_string();

    let j = proxied(&srv, "/trusted");
    let e = j.at("environ");
    assert_eq!(e.s("REMOTE_ADDR"), "203.0.113.9");
    assert_eq!(e.s("HTTP_X_FORWARDED_FOR"), "203.0.113.9, 127.0.0.1");
    assert_eq!(e.s("HTTP_HOST"), "www.example.org");
    assert_eq!(e.s("SERVER_PORT"), "8443");
    assert_eq!(e.s("SERVER_NAME"), "front.example.org");
    assert_eq!(e.s("wsgi.url_scheme"), "https");
    assert_eq!(e.s("SCRIPT_NAME"), "/mnt");
    assert_eq!(e.s("mod_wsgi.mount_point"), "/mnt");
    // Synonyms of a trusted header's category that were not trusted never reach the app.
    for gone in ["HTTP_X_REAL_IP", "HTTP_X_HOST", "HTTP_X_FORWARDED_SSL"] {
        assert!(e.get(gone).is_none(), "{gone} passed: {e:?}");
    }
    // The interpreter is chosen from what Apache saw, not from the headers.
    assert_eq!(
        e.s("mod_wsgi.application_group"),
        format!("localhost:{port}|/trusted")
    );
    assert_eq!(e.s("mod_wsgi.script_name"), "/trusted");

    let j = proxied(&srv, "/untrusted");
    let e = j.at("environ");
    assert_eq!(e.s("REMOTE_ADDR"), "127.0.0.1");
    assert_eq!(e.s("HTTP_HOST"), format!("localhost:{port}"));
    assert_eq!(e.s("SERVER_PORT"), port);
    assert_eq!(e.s("SERVER_NAME"), "localhost");
    assert_eq!(e.s("wsgi.url_scheme"), "http");
    assert_eq!(e.s("SCRIPT_NAME"), "/untrusted");
    assert!(e.get("mod_wsgi.mount_point").is_none());
    assert!(e.get("HTTPS").is_none());
    for gone in [
        "HTTP_X_FORWARDED_FOR",
        "HTTP_X_REAL_IP",
        "HTTP_X_FORWARDED_HOST",
        "HTTP_X_HOST",
        "HTTP_X_FORWARDED_PORT",
        "HTTP_X_FORWARDED_PROTO",
        "HTTP_X_FORWARDED_SSL",
        "HTTP_X_FORWARDED_SERVER",
        "HTTP_X_SCRIPT_NAME",
    ] {
        assert!(
            e.get(gone).is_none(),
            "{gone} passed from an untrusted peer"
        );
    }

    // Without the directives the headers are plain headers.
    let j = proxied(&srv, "/none");
    let e = j.at("environ");
    assert_eq!(e.s("REMOTE_ADDR"), "127.0.0.1");
    assert_eq!(e.s("HTTP_X_FORWARDED_FOR"), "203.0.113.9, 127.0.0.1");
    assert_eq!(e.s("wsgi.url_scheme"), "http");
}

// ---- WSGIPassApacheRequest ---------------------------------------------------------------------

#[test]
fn pass_apache_request_adds_a_capsule() {
    let srv = server("dir_passreq")
        .conf("WSGIScriptAlias /on \"@APPS@/environ.wsgi\"\n<Location /on>\n  WSGIPassApacheRequest On\n</Location>")
        .conf("WSGIScriptAlias /off \"@APPS@/environ.wsgi\"")
        .start();
    let j = srv.get("/on").json();
    assert_eq!(j.at("types").s("apache.request_rec"), "PyCapsule");
    let j = srv.get("/off").json();
    assert!(j.at("environ").get("apache.request_rec").is_none());
}

// ---- .htaccess ---------------------------------------------------------------------------------

#[test]
fn htaccess_takes_fileinfo_directives_and_refuses_others() {
    let mut srv = server("dir_htaccess")
        .conf(
            "Alias /ht \"@ROOT@/ht\"\n<Directory \"@ROOT@/ht\">\n  AllowOverride FileInfo\n  \
             Options +ExecCGI\n  AddHandler wsgi-script .wsgi\n  Require all granted\n</Directory>",
        )
        .conf(
            "Alias /bad \"@ROOT@/bad\"\n<Directory \"@ROOT@/bad\">\n  AllowOverride FileInfo\n  \
             Options +ExecCGI\n  AddHandler wsgi-script .wsgi\n  Require all granted\n</Directory>",
        )
        // FileInfo directives need AllowOverride FileInfo, as under mod_wsgi.
        .conf(
            "Alias /auth \"@ROOT@/auth\"\n<Directory \"@ROOT@/auth\">\n  AllowOverride AuthConfig\n  \
             Options +ExecCGI\n  AddHandler wsgi-script .wsgi\n  Require all granted\n</Directory>",
        )
        .start();
    for (dir, htaccess) in [
        ("auth", "WSGITrustedProxyHeaders X-Forwarded-For\n"),
        (
            "ht",
            "WSGICallableObject 'alternate'\nWSGITrustedProxyHeaders X-Forwarded-Proto\n\
             WSGITrustedProxies 127.0.0.1\nWSGIPassAuthorization On\nWSGIErrorOverride On\n",
        ),
        ("bad", "WSGIPassApacheRequest On\n"),
    ] {
        let d = srv.root.join(dir);
        fs::create_dir_all(&d).unwrap();
        fs::copy(srv.apps.join("environ.wsgi"), d.join("environ.wsgi")).unwrap();
        fs::write(d.join(".htaccess"), htaccess).unwrap();
    }

    let r = srv.request(
        "GET",
        "/ht/environ.wsgi",
        &[
            ("X-Forwarded-Proto", "https"),
            ("Authorization", "Basic eDp5"),
        ],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.header("X-Callable"), Some("alternate"));
    let j = r.json();
    let e = j.at("environ");
    assert_eq!(e.s("wsgi.url_scheme"), "https");
    assert_eq!(e.s("HTTP_AUTHORIZATION"), "Basic eDp5");
    if !srv.module.is_reference() {
        srv.assert_log("RWSGI0430: WSGIErrorOverride On");
    }

    let r = srv.get("/auth/environ.wsgi");
    assert_eq!(r.status, 500, "{}", r.describe());
    srv.expect_error(r.client_port, "WSGITrustedProxyHeaders not allowed here");

    let r = srv.get("/bad/environ.wsgi");
    assert_eq!(r.status, 500, "{}", r.describe());
    let lines = srv.expect_error(r.client_port, "WSGIPassApacheRequest not allowed here");
    assert!(lines.iter().any(|l| l.contains(".htaccess")), "{lines:?}");
}

// ---- WSGIIgnoreActivity ------------------------------------------------------------------------

/// mod_wsgi 4.9.4 reports the setting in the environ even in embedded mode.
#[test]
fn ignore_activity_is_reported_in_the_environ() {
    let srv = server("dir_ignore")
        .conf("WSGIScriptAlias /on \"@APPS@/environ.wsgi\"\n<Location /on>\n  WSGIIgnoreActivity On\n</Location>")
        .conf("WSGIScriptAlias /off \"@APPS@/environ.wsgi\"")
        .start();
    let j = srv.get("/on").json();
    assert_eq!(j.at("environ").s("mod_wsgi.ignore_activity"), "1");
    let j = srv.get("/off").json();
    assert_eq!(j.at("environ").s("mod_wsgi.ignore_activity"), "0");
}
