//! `<WSGIInterpreterOptions [process-group=G] [application-group=A]>`: per-interpreter values
//! of a few runtime directives, and how the sections that match one interpreter combine
//! (mod_wsgi 6's rules: the most specific section wins, a later one on a tie; `WSGIPythonPath`
//! of every matching section adds up, the most specific first on `sys.path`).

use super::PythonOptions;
use super::directives::{Id, Known};

/// One `<WSGIInterpreterOptions>` section.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct InterpreterSection {
    /// `process-group=` (`""` for `%{GLOBAL}`, the Apache children); `None` matches any.
    pub process_group: Option<String>,
    /// `application-group=` (`""` for `%{GLOBAL}`, the main interpreter); `None` matches any.
    pub application_group: Option<String>,
    pub per_interpreter_gil: Option<bool>,
    pub free_threading: Option<bool>,
    pub switch_interval: Option<f64>,
    /// Added with `site.addsitedir` on top of the base path.
    pub path: Vec<String>,
    pub restrict_stdin: Option<bool>,
    pub restrict_stdout: Option<bool>,
    pub restrict_signal: Option<bool>,
}

/// What one interpreter gets once the matching sections are applied over the top-level
/// directives.
#[derive(Debug, Clone, PartialEq)]
pub struct InterpreterSettings {
    /// The `WSGIPythonPath` of each matching section, least specific first.
    pub path_layers: Vec<Vec<String>>,
    pub switch_interval: Option<f64>,
    pub restrict_stdin: bool,
    pub restrict_stdout: bool,
    pub restrict_signal: bool,
}

/// The directives `<WSGIInterpreterOptions>` may hold.
pub fn allowed(id: Id) -> bool {
    matches!(
        id,
        Id::PerInterpreterGil
            | Id::FreeThreading
            | Id::SwitchInterval
            | Id::PythonPath
            | Id::RestrictStdin
            | Id::RestrictStdout
            | Id::RestrictSignal
    )
}

fn selector(v: &str) -> String {
    if v == "%{GLOBAL}" {
        String::new()
    } else {
        v.to_string()
    }
}

/// True for a selector computed per request (`%{ENV:…}`, …), which this module does not match.
fn dynamic(v: &Option<String>) -> bool {
    v.as_deref().is_some_and(super::expand::is_dynamic)
}

impl InterpreterSection {
    /// Parses the opening line's options (both optional).
    pub fn parse(name: &str, args: &[&str]) -> Result<InterpreterSection, String> {
        let mut s = InterpreterSection::default();
        let valid = "process-group= and application-group=";
        for opt in args {
            let (k, v) = super::words::option(name, opt, valid)?;
            match k.as_str() {
                "process-group" => s.process_group = Some(selector(v)),
                "application-group" => s.application_group = Some(selector(v)),
                _ => {
                    return Err(format!(
                        "{name}: unknown option '{k}'; valid options are {valid}"
                    ));
                }
            }
        }
        Ok(s)
    }

    /// Why the section applies to no interpreter, if so (a selector computed per request).
    pub fn unsupported(&self) -> Option<String> {
        (dynamic(&self.process_group) || dynamic(&self.application_group)).then(|| {
            format!(
                "with process-group={} application-group={} applies to no interpreter: \
                 mod_rwsgi matches these selectors against literal names and %{{GLOBAL}} only, \
                 not names computed per request",
                self.process_group.as_deref().unwrap_or("(any)"),
                self.application_group.as_deref().unwrap_or("(any)")
            )
        })
    }

    fn matches(&self, process_group: &str, application_group: &str) -> bool {
        let one = |sel: &Option<String>, v: &str| sel.as_deref().is_none_or(|s| s == v);
        self.unsupported().is_none()
            && one(&self.process_group, process_group)
            && one(&self.application_group, application_group)
    }

    fn specificity(&self) -> usize {
        usize::from(self.process_group.is_some()) + usize::from(self.application_group.is_some())
    }

    /// Applies a directive read inside the section.
    pub fn apply(&mut self, id: Id, name: &str, args: &[&str]) -> Result<(), String> {
        if !allowed(id) {
            return Err(format!(
                "{name} is not allowed inside <WSGIInterpreterOptions>; it may hold \
                 WSGIPerInterpreterGIL, WSGIFreeThreading, WSGISwitchInterval, WSGIPythonPath, \
                 WSGIRestrictStdin, WSGIRestrictStdout and WSGIRestrictSignal"
            ));
        }
        if id == Id::SwitchInterval && self.application_group.is_some() {
            // All interpreters of a process share one GIL here (no PEP 684 own GIL), and the
            // switch interval is the GIL's: it cannot differ between them.
            return Err(format!(
                "{name} is refused inside <WSGIInterpreterOptions application-group=…>: the \
                 interpreters of a process share one GIL, whose switch interval is the same for \
                 all of them (as mod_wsgi refuses it without a per-interpreter GIL); select on \
                 process-group= only"
            ));
        }
        let flag = |args: &[&str]| -> Result<bool, String> {
            match args {
                [v] => super::parse_on_off(name, v),
                _ => Err(format!("{name} takes one argument: On or Off")),
            }
        };
        match id {
            Id::PerInterpreterGil => self.per_interpreter_gil = Some(flag(args)?),
            Id::FreeThreading => self.free_threading = Some(flag(args)?),
            _ => {
                let mut o = PythonOptions::default();
                super::python::apply(
                    id,
                    name,
                    args,
                    &mut o,
                    &mut Vec::new(),
                    &Known {
                        daemon_groups: &[],
                        service_groups: &[],
                    },
                )?;
                self.switch_interval = o.switch_interval.or(self.switch_interval);
                self.restrict_stdin = o.restrict_stdin.or(self.restrict_stdin);
                self.restrict_stdout = o.restrict_stdout.or(self.restrict_stdout);
                self.restrict_signal = o.restrict_signal.or(self.restrict_signal);
                if !o.path.is_empty() {
                    self.path = o.path;
                }
            }
        }
        Ok(())
    }
}

/// The settings of the interpreter `application_group` in a process of `process_group`
/// (`""`: the Apache children), from the top-level directives in `base` and its sections.
pub fn resolve(
    base: &PythonOptions,
    process_group: &str,
    application_group: &str,
) -> InterpreterSettings {
    let mut matching: Vec<&InterpreterSection> = base
        .sections
        .iter()
        .filter(|s| s.matches(process_group, application_group))
        .collect();
    // Stable: among equally specific sections the later one stays later and wins.
    matching.sort_by_key(|s| s.specificity());
    let mut out = InterpreterSettings {
        path_layers: Vec::new(),
        switch_interval: base.switch_interval,
        restrict_stdin: base.restrict_stdin(),
        restrict_stdout: base.restrict_stdout(),
        restrict_signal: base.restrict_signal(),
    };
    for s in matching {
        if !s.path.is_empty() {
            out.path_layers.push(s.path.clone());
        }
        out.switch_interval = s.switch_interval.or(out.switch_interval);
        out.restrict_stdin = s.restrict_stdin.unwrap_or(out.restrict_stdin);
        out.restrict_stdout = s.restrict_stdout.unwrap_or(out.restrict_stdout);
        out.restrict_signal = s.restrict_signal.unwrap_or(out.restrict_signal);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(opts: &[&str], lines: &[(Id, &str)]) -> InterpreterSection {
        let mut s = InterpreterSection::parse("<WSGIInterpreterOptions", opts).unwrap();
        for (id, v) in lines {
            s.apply(*id, "D", &[v]).unwrap();
        }
        s
    }

    #[test]
    fn selectors() {
        let s = section(&["process-group=%{GLOBAL}", "application-group=app"], &[]);
        assert_eq!(s.process_group.as_deref(), Some(""));
        assert_eq!(s.application_group.as_deref(), Some("app"));
        assert!(s.matches("", "app") && !s.matches("d", "app") && !s.matches("", "other"));
        assert!(section(&[], &[]).matches("any", "thing"));
        for bad in [&["bogus=1"][..], &["process-group="], &["plain"]] {
            assert!(InterpreterSection::parse("I", bad).is_err(), "{bad:?}");
        }
        let env = section(&["application-group=%{ENV:APP}"], &[]);
        assert!(env.unsupported().unwrap().contains("%{ENV:APP}"));
        assert!(!env.matches("", "%{ENV:APP}"));
    }

    #[test]
    fn contents() {
        let mut s = section(&["process-group=d"], &[]);
        s.apply(Id::SwitchInterval, "S", &["0.002"]).unwrap();
        assert_eq!(s.switch_interval, Some(0.002));
        assert!(s.apply(Id::ScriptAlias, "A", &["/x", "/y"]).is_err());
        assert!(s.apply(Id::RestrictStdin, "R", &["maybe"]).is_err());
        assert!(s.apply(Id::PerInterpreterGil, "P", &["On", "Off"]).is_err());
        let mut a = section(&["application-group=a"], &[]);
        let e = a.apply(Id::SwitchInterval, "S", &["0.002"]).unwrap_err();
        assert!(e.contains("share one GIL"), "{e}");
    }

    #[test]
    fn most_specific_wins_then_the_later_and_paths_add_up() {
        let base = PythonOptions {
            switch_interval: Some(0.01),
            restrict_signal: Some(true),
            sections: vec![
                section(&[], &[(Id::PythonPath, "/all")]),
                section(
                    &["application-group=a"],
                    &[
                        (Id::PythonPath, "/a1:/a2"),
                        (Id::RestrictStdin, "On"),
                        (Id::RestrictStdout, "On"),
                        (Id::RestrictSignal, "Off"),
                    ],
                ),
                section(
                    &["process-group=d"],
                    &[(Id::SwitchInterval, "0.002"), (Id::RestrictStdout, "Off")],
                ),
                section(
                    &["process-group=d", "application-group=a"],
                    &[(Id::RestrictStdin, "Off"), (Id::PythonPath, "/da")],
                ),
            ],
            ..Default::default()
        };
        let e = resolve(&base, "", "a");
        assert_eq!(e.path_layers, vec![vec!["/all"], vec!["/a1", "/a2"]]);
        assert!(e.restrict_stdin && e.restrict_stdout && !e.restrict_signal);
        assert_eq!(e.switch_interval, Some(0.01));
        let d = resolve(&base, "d", "a");
        assert_eq!(
            d.path_layers,
            vec![vec!["/all"], vec!["/a1", "/a2"], vec!["/da"]]
        );
        // Two sections of one key each: the later (process-group=d) wins for stdout.
        assert!(!d.restrict_stdin && !d.restrict_stdout && !d.restrict_signal);
        assert_eq!(d.switch_interval, Some(0.002));
        let other = resolve(&base, "", "b");
        assert_eq!(other.path_layers, vec![vec!["/all"]]);
        assert!(!other.restrict_stdin && !other.restrict_stdout && other.restrict_signal);
    }
}
