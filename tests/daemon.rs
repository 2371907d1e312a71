//! Daemon mode: `WSGIDaemonProcess` groups run by the Apache parent, requests relayed to
//! them over a UNIX socket.
mod common;
use common::*;

fn config_output(lines: &[&str]) -> ConfigTest {
    let mut b = server("daemon_conf").fragment("apps");
    for l in lines {
        b = b.conf(l);
    }
    b.config_test()
}

#[test]
fn unknown_or_bad_daemon_options_are_rejected_naming_the_option() {
    for (line, needle) in [
        ("WSGIDaemonProcess site bogus-option=1", "bogus-option"),
        ("WSGIDaemonProcess site threads=many", "threads"),
        ("WSGIDaemonProcess site processes=0", "processes"),
        ("WSGIDaemonProcess site umask=999", "umask"),
    ] {
        let t = config_output(&[line]);
        assert!(!t.ok, "accepted {line:?}:\n{}", t.output);
        assert!(t.output.contains(needle), "{line:?}:\n{}", t.output);
        assert!(t.output.contains("WSGIDaemonProcess"), "{}", t.output);
    }
}
