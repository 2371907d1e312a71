//! Directives of mod_wsgi 4.9 to 6.x that mod_rwsgi accepts so existing configurations load,
//! but that change nothing here. Each is validated like the original, and each use gives a
//! start-up warning that names it and says why; none is ignored silently.

use super::directives::Id;
use super::{DirConfig, Notice, parse_on_off};

/// The Python this module was built for (`major.minor`).
const BUILD_PYTHON: &str = env!("RWSGI_BUILD_PYTHON");

fn one<'a>(name: &str, args: &[&'a str], what: &str) -> Result<&'a str, String> {
    match args {
        [v] if !v.is_empty() => Ok(v),
        _ => Err(format!("{name} takes one argument: {what}")),
    }
}

fn positive_seconds(name: &str, v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 => Ok(s),
        _ => Err(format!(
            "{name}: '{v}' is not valid; use a positive number of seconds"
        )),
    }
}

fn python_at_least(major_minor: &str, want: (u32, u32)) -> bool {
    let mut p = major_minor
        .split('.')
        .map(|n| n.parse::<u32>().unwrap_or(0));
    (p.next().unwrap_or(0), p.next().unwrap_or(0)) >= want
}

fn telemetry_service(name: &str, args: &[&str]) -> Result<(), String> {
    let usage = format!("use {name} unix:/path/to/socket [interval=SECONDS]");
    let (target, rest) = args
        .split_first()
        .ok_or_else(|| format!("{name} needs a target; {usage}"))?;
    match target.strip_prefix("unix:") {
        Some(path) if path.starts_with('/') => {}
        _ => {
            return Err(format!(
                "{name}: '{target}' is not a unix:/absolute/path target; {usage}"
            ));
        }
    }
    for opt in rest {
        match super::words::option(name, opt, &usage)? {
            (k, v) if k == "interval" => positive_seconds(&format!("{name} interval="), v)?,
            (k, _) => return Err(format!("{name}: unknown option '{k}'; {usage}")),
        };
    }
    Ok(())
}

fn telemetry_options(name: &str, args: &[&str]) -> Result<(), String> {
    const FLAGS: &[&str] = &["CaptureUserAgent"];
    if args.is_empty() {
        return Err(format!("{name} needs None, All or [+|-]CaptureUserAgent"));
    }
    for a in args {
        if (a.eq_ignore_ascii_case("none") || a.eq_ignore_ascii_case("all")) && args.len() == 1 {
            continue;
        }
        let flag = a.trim_start_matches(['+', '-']);
        if !FLAGS.iter().any(|f| f.eq_ignore_ascii_case(flag)) || a.len() > flag.len() + 1 {
            return Err(format!(
                "{name}: '{a}' is not valid; use None, All, or one or more of \
                 [+|-]CaptureUserAgent"
            ));
        }
    }
    Ok(())
}

/// Validates a compatibility directive; the result is why it has no effect, if it has none.
pub fn apply(id: Id, name: &str, args: &[&str]) -> Result<Option<String>, String> {
    let flag = |args: &[&str]| parse_on_off(name, one(name, args, "On or Off")?);
    Ok(match id {
        Id::VerboseDebugging => {
            flag(args)?;
            Some(
                "is deprecated and has no effect (as in mod_wsgi 6); use 'LogLevel wsgi:debug' \
                 or 'LogLevel rwsgi:debug' instead"
                    .into(),
            )
        }
        Id::PerInterpreterGil => {
            if !flag(args)? {
                None
            } else if python_at_least(BUILD_PYTHON, (3, 12)) {
                Some("On is not supported by mod_rwsgi: sub-interpreters share the main GIL".into())
            } else {
                Some(format!(
                    "On has no effect: Python {BUILD_PYTHON} has no per-interpreter GIL \
                     (PEP 684, Python 3.12+); sub-interpreters share the main GIL"
                ))
            }
        }
        Id::FreeThreading => flag(args)?.then(|| {
            format!(
                "On has no effect: this Python ({BUILD_PYTHON}) is not a free-threaded build; \
                 the GIL stays on"
            )
        }),
        Id::TelemetryService => {
            telemetry_service(name, args)?;
            Some("is not supported by mod_rwsgi; no telemetry is sent".into())
        }
        Id::SlowRequests => {
            positive_seconds(name, one(name, args, "seconds")?)?;
            Some("is not supported by mod_rwsgi (it reports to WSGITelemetryService)".into())
        }
        Id::TelemetryOptions => {
            telemetry_options(name, args)?;
            Some("is not supported by mod_rwsgi (it configures WSGITelemetryService)".into())
        }
        Id::NewRelicConfigFile => {
            one(name, args, "a file path")?;
            Some(
                "is not supported (mod_wsgi 6 removed it too); start the New Relic agent from \
                 the WSGI script instead"
                    .into(),
            )
        }
        Id::NewRelicEnvironment => {
            one(name, args, "an environment name")?;
            Some(
                "is not supported (mod_wsgi 6 removed it too); set NEW_RELIC_ENVIRONMENT in the \
                 WSGI script instead"
                    .into(),
            )
        }
        Id::AcceptMutex => {
            const MECHS: &[&str] = &[
                "default", "flock", "fcntl", "sysvsem", "posixsem", "pthread",
            ];
            let v = one(name, args, "a lock mechanism")?;
            if !MECHS.iter().any(|m| m.eq_ignore_ascii_case(v)) {
                return Err(format!(
                    "{name}: '{v}' is not a lock mechanism; use one of {}",
                    MECHS.join(", ")
                ));
            }
            Some(
                "has no effect: each daemon process waits on its group's socket with its own \
                 threads and needs no cross-process accept lock"
                    .into(),
            )
        }
        _ => return Err(format!("{name} is not a compatibility directive")),
    })
}

/// Why a per-directory setting may have no effect, if it may have none.
pub fn dir_notice(id: Id, directive: &'static str, conf: &DirConfig) -> Option<Notice> {
    match id {
        Id::ErrorOverride if conf.error_override == Some(true) => Some(Notice {
            directive,
            reason: "On acts only on responses of daemon process groups (as in mod_wsgi), and \
                     this configuration defines none; requests run embedded keep the \
                     application's error pages"
                .into(),
            daemon_mode_only: true,
        }),
        _ => None,
    }
}

/// Why a runtime setting has no effect, if it has none (`WSGILazyInitialization Off`).
pub fn lazy_initialization_notice(value: Option<bool>) -> Option<String> {
    (value == Some(false)).then(|| {
        "Off has no effect: Python is always started in each child after fork (as in \
         mod_wsgi 6)"
            .into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_notices() {
        assert!(
            apply(Id::VerboseDebugging, "V", &["On"])
                .unwrap()
                .unwrap()
                .contains("deprecated")
        );
        assert!(
            apply(Id::VerboseDebugging, "V", &["maybe"])
                .unwrap_err()
                .contains("On or Off")
        );
        assert_eq!(apply(Id::PerInterpreterGil, "P", &["Off"]).unwrap(), None);
        let n = apply(Id::PerInterpreterGil, "P", &["On"]).unwrap().unwrap();
        assert!(n.contains("GIL"), "{n}");
        assert_eq!(apply(Id::FreeThreading, "F", &["off"]).unwrap(), None);
        assert!(apply(Id::FreeThreading, "F", &["On"]).unwrap().is_some());
        assert!(apply(Id::FreeThreading, "F", &[]).is_err());
        assert!(python_at_least("3.12", (3, 12)) && !python_at_least("3.11", (3, 12)));
        assert!(apply(Id::AcceptMutex, "M", &["fcntl"]).unwrap().is_some());
        assert!(apply(Id::AcceptMutex, "M", &["spin"]).is_err());
    }

    #[test]
    fn telemetry() {
        apply(Id::TelemetryService, "T", &["unix:/run/t.sock"]).unwrap();
        apply(
            Id::TelemetryService,
            "T",
            &["unix:/run/t.sock", "interval=2.5"],
        )
        .unwrap();
        for bad in [
            &["tcp:1.2.3.4"][..],
            &["unix:rel"],
            &["unix:/x", "interval=0"],
            &["unix:/x", "every=3"],
            &[],
        ] {
            assert!(apply(Id::TelemetryService, "T", bad).is_err(), "{bad:?}");
        }
        apply(Id::SlowRequests, "S", &["1.5"]).unwrap();
        assert!(apply(Id::SlowRequests, "S", &["-1"]).is_err());
        apply(Id::TelemetryOptions, "O", &["+CaptureUserAgent"]).unwrap();
        apply(Id::TelemetryOptions, "O", &["None"]).unwrap();
        for bad in [
            &["Bogus"][..],
            &["None", "All"],
            &["++CaptureUserAgent"],
            &[],
        ] {
            assert!(apply(Id::TelemetryOptions, "O", bad).is_err(), "{bad:?}");
        }
    }
}
