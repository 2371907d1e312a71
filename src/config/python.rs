//! The Python runtime directives (`WSGIPythonHome`, `WSGIPythonPath`, … `WSGIImportScript`):
//! their values as a plain struct, the pure setters that validate them, and the pure part of
//! the `WSGIPythonHome` version check.

use super::directives::{Id, Known};
use super::parse_on_off;

/// `WSGIPythonHashSeed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashSeed {
    Random,
    Fixed(u32),
}

/// How the embedded Python is started and what every interpreter gets. Set only at main
/// server scope; `None` means the directive was not given.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PythonOptions {
    /// `WSGIPythonHome`: a prefix (`prefix[:exec_prefix]`) or a PEP 405 virtual environment.
    pub home: Option<String>,
    /// `WSGIPythonPath`: directories given to `site.addsitedir` in every interpreter.
    pub path: Vec<String>,
    pub optimize: Option<u8>,
    pub hash_seed: Option<HashSeed>,
    /// `WSGIPythonWarnings`, in config order (`-W` specs).
    pub warnings: Vec<String>,
    pub dont_write_bytecode: Option<bool>,
    /// `WSGIPythonEggs`: the `PYTHON_EGG_CACHE` directory.
    pub eggs: Option<String>,
    /// `WSGISwitchInterval` in seconds.
    pub switch_interval: Option<f64>,
    pub restrict_stdin: Option<bool>,
    pub restrict_stdout: Option<bool>,
    pub restrict_signal: Option<bool>,
    pub case_sensitivity: Option<bool>,
    /// `WSGILazyInitialization`: accepted for old configs; Python always starts after fork.
    pub lazy_initialization: Option<bool>,
    pub destroy_interpreter: Option<bool>,
    /// `WSGIServerMetrics`: accepted without effect: embedded code may always call
    /// `server_metrics()` (as under mod_wsgi 4.9.4); daemon groups use `server-metrics=`.
    pub server_metrics: Option<bool>,
    /// `WSGIMaximumInterpreters`: the most sub-interpreters one process creates.
    pub maximum_interpreters: Option<u32>,
    /// `<WSGIInterpreterOptions>` sections, in config order.
    pub sections: Vec<super::interp_options::InterpreterSection>,
    /// The process group of the process these options are for (`""`: the Apache children;
    /// a daemon group's copy names the group), which the sections' `process-group=` match.
    pub process_group: String,
}

/// Default of `WSGIMaximumInterpreters`: far above what a real configuration uses (one per
/// application group), low enough that names a client can vary cannot exhaust memory
/// (each sub-interpreter costs about 1 MB before the application imports anything).
pub const DEFAULT_MAXIMUM_INTERPRETERS: u32 = 100;

impl PythonOptions {
    /// `WSGIRestrictSignal` (default On).
    pub fn restrict_signal(&self) -> bool {
        self.restrict_signal.unwrap_or(true)
    }
    /// `WSGIRestrictStdin` (default Off).
    pub fn restrict_stdin(&self) -> bool {
        self.restrict_stdin.unwrap_or(false)
    }
    /// `WSGIRestrictStdout` (default Off).
    pub fn restrict_stdout(&self) -> bool {
        self.restrict_stdout.unwrap_or(false)
    }
    /// `WSGICaseSensitivity` (default On: Linux file systems are case-sensitive).
    pub fn case_sensitive(&self) -> bool {
        self.case_sensitivity.unwrap_or(true)
    }
    /// `WSGIDestroyInterpreter` (default On).
    pub fn destroy_interpreter(&self) -> bool {
        self.destroy_interpreter.unwrap_or(true)
    }
    /// `WSGIMaximumInterpreters` (default [`DEFAULT_MAXIMUM_INTERPRETERS`]). It counts every
    /// sub-interpreter the process created, also those whose set-up failed; the main
    /// interpreter (`%{GLOBAL}`) is not counted, so 0 allows only `%{GLOBAL}`.
    pub fn maximum_interpreters(&self) -> u32 {
        self.maximum_interpreters
            .unwrap_or(DEFAULT_MAXIMUM_INTERPRETERS)
    }
}

/// `WSGIImportScript path process-group=G application-group=A`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportScript {
    pub path: String,
    /// Expanded process group (`""` is `%{GLOBAL}`, the Apache children).
    pub process_group: String,
    /// Expanded application group (`""` is `%{GLOBAL}`, the main interpreter).
    pub application_group: String,
}

fn one<'a>(name: &str, args: &[&'a str], what: &str) -> Result<&'a str, String> {
    match args {
        [v] if !v.is_empty() => Ok(v),
        [_] => Err(format!("{name}: the {what} is empty")),
        _ => Err(format!("{name} takes one argument: {what}")),
    }
}

/// The `-W` actions Python accepts (also as unambiguous prefixes, as `warnings` does).
const WARN_ACTIONS: &[&str] = &["default", "always", "ignore", "module", "once", "error"];

fn check_warning(name: &str, spec: &str) -> Result<(), String> {
    let fields: Vec<&str> = spec.split(':').collect();
    let usage = "use action[:message[:category[:module[:lineno]]]] with action one of \
                 default, always, ignore, module, once or error";
    if fields.len() > 5 {
        return Err(format!("{name}: '{spec}' has too many ':' fields; {usage}"));
    }
    let action = fields[0].trim();
    if !action.is_empty() && !WARN_ACTIONS.iter().any(|a| a.starts_with(action)) {
        return Err(format!(
            "{name}: '{action}' in '{spec}' is not a warning action; {usage}"
        ));
    }
    if let Some(lineno) = fields.get(4).map(|l| l.trim()) {
        if !lineno.is_empty() && lineno.parse::<u32>().is_err() {
            return Err(format!(
                "{name}: line number '{lineno}' in '{spec}' is not a non-negative integer"
            ));
        }
    }
    Ok(())
}

fn parse_hash_seed(name: &str, v: &str) -> Result<HashSeed, String> {
    if v.eq_ignore_ascii_case("random") {
        return Ok(HashSeed::Random);
    }
    // u32::from_str accepts a leading '+'; Python's PYTHONHASHSEED does not.
    if v.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(n) = v.parse::<u32>() {
            return Ok(HashSeed::Fixed(n));
        }
    }
    Err(format!(
        "{name}: '{v}' is not valid; use random or an integer from 0 to 4294967295"
    ))
}

fn parse_switch_interval(name: &str, v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 => Ok(s),
        _ => Err(format!(
            "{name}: '{v}' is not valid; use a positive number of seconds, e.g. 0.005"
        )),
    }
}

fn parse_maximum_interpreters(name: &str, v: &str) -> Result<u32, String> {
    // u32::from_str accepts a leading '+'.
    match v.parse::<u32>() {
        Ok(n) if v.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(format!(
            "{name}: '{v}' is not valid; use a number of sub-interpreters from 0 to 4294967295 \
             (0 allows only WSGIApplicationGroup %{{GLOBAL}})"
        )),
    }
}

fn parse_import_script(
    name: &str,
    args: &[&str],
    known: &Known<'_>,
) -> Result<ImportScript, String> {
    let usage = format!("use {name} path process-group=%{{GLOBAL}} application-group=GROUP");
    let Some((path, options)) = args.split_first() else {
        return Err(format!("{name} needs a script path; {usage}"));
    };
    if path.is_empty() || path.contains('=') && !path.starts_with('/') {
        return Err(format!("{name}: '{path}' is not a script path; {usage}"));
    }
    let (mut process_group, mut application_group) = (None, None);
    for opt in options {
        let (key, value) = super::words::option(name, opt, &usage)?;
        match key.as_str() {
            "process-group" => process_group = Some(value),
            "application-group" => application_group = Some(value),
            _ => {
                return Err(format!(
                    "{name}: unknown option '{key}'; valid options are process-group= and \
                     application-group="
                ));
            }
        }
    }
    let (Some(pg), Some(ag)) = (process_group, application_group) else {
        return Err(format!(
            "{name}: both process-group= and application-group= are required; {usage}"
        ));
    };
    let process_group = if pg == "%{GLOBAL}" {
        String::new()
    } else if known.daemon_groups.iter().any(|g| g == pg) {
        pg.to_string()
    } else {
        return Err(format!(
            "{name}: no WSGI daemon process called '{pg}' has been configured (define it with \
             WSGIDaemonProcess before this line, or use process-group=%{{GLOBAL}} to preload \
             into the Apache child processes)"
        ));
    };
    let application_group = if ag == "%{GLOBAL}" {
        String::new()
    } else if super::expand::is_dynamic(ag) {
        // Other %{...} names depend on a request, and there is none when the script runs.
        return Err(format!(
            "{name}: application-group '{ag}' cannot be expanded at process start; use \
             %{{GLOBAL}} or a literal group name"
        ));
    } else {
        ag.to_string()
    };
    Ok(ImportScript {
        path: path.to_string(),
        process_group,
        application_group,
    })
}

/// Applies a Python runtime directive (also `WSGIImportScript`, which goes to `scripts`).
pub fn apply(
    id: Id,
    name: &str,
    args: &[&str],
    opts: &mut PythonOptions,
    scripts: &mut Vec<ImportScript>,
    known: &Known<'_>,
) -> Result<(), String> {
    if id == Id::ImportScript {
        scripts.push(parse_import_script(name, args, known)?);
        return Ok(());
    }
    if id == Id::PythonWarnings {
        let spec = one(name, args, "warning filter (a -W option)")?;
        check_warning(name, spec)?;
        opts.warnings.push(spec.to_string());
        return Ok(());
    }
    let on_off = |args: &[&str]| -> Result<bool, String> {
        parse_on_off(name, one(name, args, "value (On or Off)")?)
    };
    match id {
        Id::PythonHome => {
            let v = one(name, args, "Python home directory")?;
            if !v.starts_with('/') {
                return Err(format!(
                    "{name}: '{v}' is not an absolute path; give the directory of a Python \
                     prefix or virtual environment, e.g. /srv/app/venv"
                ));
            }
            opts.home = Some(v.to_string());
        }
        Id::PythonPath => {
            let v = one(name, args, "directory list (dir:dir…)")?;
            let dirs: Vec<String> = v
                .split(':')
                .filter(|d| !d.is_empty())
                .map(str::to_string)
                .collect();
            if dirs.is_empty() {
                return Err(format!("{name}: '{v}' names no directory; use dir[:dir…]"));
            }
            opts.path = dirs;
        }
        Id::PythonOptimize => {
            let v = one(name, args, "level (0, 1 or 2)")?;
            opts.optimize = Some(match v {
                "0" => 0,
                "1" => 1,
                "2" => 2,
                _ => return Err(format!("{name}: '{v}' is not valid; use 0, 1 or 2")),
            });
        }
        Id::PythonHashSeed => {
            opts.hash_seed = Some(parse_hash_seed(name, one(name, args, "seed")?)?);
        }
        Id::DontWriteBytecode => opts.dont_write_bytecode = Some(on_off(args)?),
        Id::PythonEggs => {
            opts.eggs = Some(one(name, args, "egg cache directory")?.to_string());
        }
        Id::SwitchInterval => {
            opts.switch_interval = Some(parse_switch_interval(
                name,
                one(name, args, "interval in seconds")?,
            )?);
        }
        Id::RestrictStdin => opts.restrict_stdin = Some(on_off(args)?),
        Id::RestrictStdout => opts.restrict_stdout = Some(on_off(args)?),
        Id::RestrictSignal => opts.restrict_signal = Some(on_off(args)?),
        Id::CaseSensitivity => opts.case_sensitivity = Some(on_off(args)?),
        Id::LazyInitialization => opts.lazy_initialization = Some(on_off(args)?),
        Id::DestroyInterpreter => opts.destroy_interpreter = Some(on_off(args)?),
        Id::ServerMetrics => opts.server_metrics = Some(on_off(args)?),
        Id::MaximumInterpreters => {
            opts.maximum_interpreters = Some(parse_maximum_interpreters(
                name,
                one(name, args, "number of sub-interpreters")?,
            )?);
        }
        _ => return Err(format!("{name} is not a Python runtime directive")),
    }
    Ok(())
}

/// The `major.minor` a `pyvenv.cfg` names (`version = 3.11.2` or `version_info = 3.11.2.final.0`).
pub fn pyvenv_version(cfg: &str) -> Option<String> {
    for line in cfg.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if matches!(key.trim(), "version" | "version_info") {
            let mut parts = value.trim().split('.');
            if let (Some(a), Some(b)) = (parts.next(), parts.next()) {
                if a.parse::<u32>().is_ok() && b.parse::<u32>().is_ok() {
                    return Some(format!("{a}.{b}"));
                }
            }
        }
    }
    None
}

/// Checks that a `WSGIPythonHome` is for the Python `build` (`major.minor`) this module runs.
/// `pyvenv_cfg` is the text of `<home>/pyvenv.cfg` if there is one; `lib_entries` the names
/// in `<home>/lib`. The venv's own record wins; otherwise a `lib/pythonX.Y` directory must
/// exist for `build` when any exists at all.
pub fn check_home_version(
    home: &str,
    pyvenv_cfg: Option<&str>,
    lib_entries: &[String],
    build: &str,
) -> Result<(), String> {
    let cure = format!(
        "point WSGIPythonHome at a Python {build} installation or a virtual environment made \
         with Python {build} (e.g. /usr/bin/python{build} -m venv), or rebuild mod_rwsgi \
         against the other Python"
    );
    if let Some(v) = pyvenv_cfg.and_then(pyvenv_version) {
        if v != build {
            return Err(format!(
                "WSGIPythonHome '{home}' is a virtual environment for Python {v}, but mod_rwsgi \
                 was built for Python {build}; {cure}"
            ));
        }
        return Ok(());
    }
    let versions: Vec<&str> = lib_entries
        .iter()
        .filter_map(|e| e.strip_prefix("python"))
        .filter(|v| {
            let mut p = v.split('.');
            matches!((p.next(), p.next(), p.next()), (Some(a), Some(b), None)
                if a.parse::<u32>().is_ok() && b.parse::<u32>().is_ok())
        })
        .collect();
    if versions.is_empty() || versions.contains(&build) {
        return Ok(());
    }
    Err(format!(
        "WSGIPythonHome '{home}' holds Python {} (lib/python{}), but mod_rwsgi was built for \
         Python {build}; {cure}",
        versions.join(", "),
        versions[0]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: Known<'static> = Known {
        daemon_groups: &[],
        service_groups: &[],
    };

    fn set(id: Id, args: &[&str]) -> Result<PythonOptions, String> {
        let mut o = PythonOptions::default();
        let mut s = Vec::new();
        apply(id, "D", args, &mut o, &mut s, &NONE).map(|_| o)
    }

    #[test]
    fn defaults() {
        let o = PythonOptions::default();
        assert!(o.restrict_signal());
        assert!(!o.restrict_stdin());
        assert!(!o.restrict_stdout());
        assert!(o.case_sensitive());
        assert!(o.destroy_interpreter());
        assert_eq!(o.maximum_interpreters(), DEFAULT_MAXIMUM_INTERPRETERS);
    }

    #[test]
    fn maximum_interpreters() {
        let o = set(Id::MaximumInterpreters, &["3"]).unwrap();
        assert_eq!(o.maximum_interpreters(), 3);
        assert_eq!(
            set(Id::MaximumInterpreters, &["0"])
                .unwrap()
                .maximum_interpreters(),
            0
        );
        for bad in ["-1", "+3", "many", "4294967296", "1.5"] {
            let e = set(Id::MaximumInterpreters, &[bad]).unwrap_err();
            assert!(
                e.starts_with("D:") && e.contains("number of sub-interpreters"),
                "{e}"
            );
        }
        assert!(set(Id::MaximumInterpreters, &[]).is_err());
    }

    #[test]
    fn home_and_path() {
        assert_eq!(
            set(Id::PythonHome, &["/v"]).unwrap().home.as_deref(),
            Some("/v")
        );
        assert!(
            set(Id::PythonHome, &["v"])
                .unwrap_err()
                .contains("absolute")
        );
        assert!(set(Id::PythonHome, &[""]).unwrap_err().contains("empty"));
        assert!(
            set(Id::PythonHome, &["/a", "/b"])
                .unwrap_err()
                .contains("one argument")
        );
        assert_eq!(
            set(Id::PythonPath, &["/a::/b:"]).unwrap().path,
            vec!["/a".to_string(), "/b".to_string()]
        );
        assert!(
            set(Id::PythonPath, &[":"])
                .unwrap_err()
                .contains("names no directory")
        );
    }

    #[test]
    fn optimize_hash_seed_interval() {
        assert_eq!(set(Id::PythonOptimize, &["2"]).unwrap().optimize, Some(2));
        for bad in ["3", "-1", "one", " 1"] {
            let e = set(Id::PythonOptimize, &[bad]).unwrap_err();
            assert!(e.contains("use 0, 1 or 2") && e.starts_with("D:"), "{e}");
        }
        assert_eq!(
            set(Id::PythonHashSeed, &["RANDOM"]).unwrap().hash_seed,
            Some(HashSeed::Random)
        );
        assert_eq!(
            set(Id::PythonHashSeed, &["4294967295"]).unwrap().hash_seed,
            Some(HashSeed::Fixed(u32::MAX))
        );
        for bad in ["4294967296", "-1", "+3", "0x10", "abc", "1.5"] {
            let e = set(Id::PythonHashSeed, &[bad]).unwrap_err();
            assert!(
                e.contains("random or an integer from 0 to 4294967295"),
                "{e}"
            );
        }
        assert_eq!(
            set(Id::SwitchInterval, &["0.25"]).unwrap().switch_interval,
            Some(0.25)
        );
        for bad in ["0", "-1", "nan", "inf", "fast"] {
            let e = set(Id::SwitchInterval, &[bad]).unwrap_err();
            assert!(e.contains("positive number of seconds"), "{bad}: {e}");
        }
    }

    #[test]
    fn warnings_and_flags() {
        let mut o = PythonOptions::default();
        let mut s = Vec::new();
        for w in [
            "ignore::DeprecationWarning",
            "error",
            "d:msg:UserWarning:mod:12",
            "",
        ] {
            apply(Id::PythonWarnings, "W", &[w], &mut o, &mut s, &NONE)
                .or_else(|e| if w.is_empty() { Ok(()) } else { Err(e) })
                .unwrap();
        }
        assert_eq!(o.warnings.len(), 3);
        for bad in ["shout", "ignore:a:b:c:x", "a:b:c:d:1:2"] {
            let e = set(Id::PythonWarnings, &[bad]).unwrap_err();
            assert!(e.starts_with("D:"), "{e}");
        }
        assert_eq!(
            set(Id::DontWriteBytecode, &["on"])
                .unwrap()
                .dont_write_bytecode,
            Some(true)
        );
        assert_eq!(
            set(Id::RestrictSignal, &["Off"]).unwrap().restrict_signal,
            Some(false)
        );
        assert_eq!(
            set(Id::CaseSensitivity, &["Off"]).unwrap().case_sensitivity,
            Some(false)
        );
        assert_eq!(
            set(Id::DestroyInterpreter, &["Off"])
                .unwrap()
                .destroy_interpreter,
            Some(false)
        );
        assert_eq!(
            set(Id::LazyInitialization, &["On"])
                .unwrap()
                .lazy_initialization,
            Some(true)
        );
        for id in [Id::RestrictStdin, Id::RestrictStdout, Id::DontWriteBytecode] {
            assert!(set(id, &["yes"]).unwrap_err().contains("use On or Off"));
            assert!(set(id, &[]).is_err());
        }
        assert_eq!(
            set(Id::PythonEggs, &["/tmp/e"]).unwrap().eggs.as_deref(),
            Some("/tmp/e")
        );
    }

    #[test]
    fn import_script() {
        let mut o = PythonOptions::default();
        let mut s = Vec::new();
        let mut run = |args: &[&str], known: &Known<'_>| {
            apply(Id::ImportScript, "I", args, &mut o, &mut s, known)
        };
        run(
            &[
                "/a.py",
                "process-group=%{GLOBAL}",
                "application-group=%{GLOBAL}",
            ],
            &NONE,
        )
        .unwrap();
        run(
            &["/b.py", "Application-Group=grp", "process-group=%{GLOBAL}"],
            &NONE,
        )
        .unwrap();
        let e = run(
            &[
                "/c.py",
                "process-group=daemon1",
                "application-group=%{GLOBAL}",
            ],
            &NONE,
        )
        .unwrap_err();
        assert!(e.contains("no WSGI daemon process called 'daemon1'"), "{e}");
        let known = Known {
            daemon_groups: &["daemon1".to_string()],
            service_groups: &["daemon1".to_string()],
        };
        run(
            &["/c.py", "process-group=daemon1", "application-group=x"],
            &known,
        )
        .unwrap();
        assert!(
            run(&["/d.py", "process-group=%{GLOBAL}"], &NONE)
                .unwrap_err()
                .contains("both process-group= and application-group= are required")
        );
        assert!(run(&["/d.py"], &NONE).unwrap_err().contains("required"));
        assert!(run(&[], &NONE).unwrap_err().contains("needs a script path"));
        assert!(
            run(
                &[
                    "/d.py",
                    "process-group=%{GLOBAL}",
                    "application-group=%{SERVER}"
                ],
                &NONE
            )
            .unwrap_err()
            .contains("cannot be expanded")
        );
        assert!(
            run(&["/d.py", "bogus=1"], &NONE)
                .unwrap_err()
                .contains("unknown option")
        );
        assert!(
            run(&["/d.py", "process-group="], &NONE)
                .unwrap_err()
                .contains("needs a value")
        );
        assert_eq!(
            s,
            vec![
                ImportScript {
                    path: "/a.py".into(),
                    process_group: String::new(),
                    application_group: String::new()
                },
                ImportScript {
                    path: "/b.py".into(),
                    process_group: String::new(),
                    application_group: "grp".into()
                },
                ImportScript {
                    path: "/c.py".into(),
                    process_group: "daemon1".into(),
                    application_group: "x".into()
                },
            ]
        );
    }

    #[test]
    fn home_version() {
        let libs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            pyvenv_version("home = /usr/bin\nversion = 3.9.18\n").as_deref(),
            Some("3.9")
        );
        assert_eq!(
            pyvenv_version("version_info = 3.12.1.final.0").as_deref(),
            Some("3.12")
        );
        assert_eq!(pyvenv_version("home = /usr/bin\nversion = garbage"), None);
        check_home_version("/v", Some("version = 3.11.2"), &[], "3.11").unwrap();
        let e = check_home_version(
            "/v",
            Some("version = 3.9.18"),
            &libs(&["python3.11"]),
            "3.11",
        )
        .unwrap_err();
        assert!(
            e.contains("Python 3.9") && e.contains("Python 3.11") && e.contains("'/v'"),
            "{e}"
        );
        // No usable version in pyvenv.cfg: the lib dir decides.
        let e =
            check_home_version("/v", Some("home = /x"), &libs(&["python3.9"]), "3.11").unwrap_err();
        assert!(e.contains("lib/python3.9"), "{e}");
        check_home_version(
            "/usr",
            None,
            &libs(&["python3", "python3.11", "python3.9"]),
            "3.11",
        )
        .unwrap();
        check_home_version(
            "/opt",
            None,
            &libs(&["x86_64-linux-gnu", "python3"]),
            "3.11",
        )
        .unwrap();
    }
}
