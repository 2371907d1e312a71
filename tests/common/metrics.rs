//! A strict parser of the OpenMetrics 1.0 / Prometheus 0.0.4 text exposition (enough of it to
//! check what mod_rwsgi writes), and of mod_status's `?auto` lines.

use std::collections::{BTreeMap, HashSet};

/// One sample line.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// One metric family (`# TYPE` and the samples after it).
#[derive(Debug, Clone)]
pub struct Family {
    pub name: String,
    pub kind: String,
    pub help: Option<String>,
    pub samples: Vec<Sample>,
}

/// A parsed exposition.
#[derive(Debug, Clone)]
pub struct Exposition {
    pub families: Vec<Family>,
}

fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let eq = s[i..].find('=').ok_or(format!("label without '=': {s}"))? + i;
        let name = &s[i..eq];
        if name.is_empty()
            || !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
            || name.as_bytes()[0].is_ascii_digit()
        {
            return Err(format!("bad label name {name:?}"));
        }
        if b.get(eq + 1) != Some(&b'"') {
            return Err(format!("label value not quoted: {s}"));
        }
        let mut j = eq + 2;
        let mut v = String::new();
        loop {
            match b.get(j) {
                None => return Err(format!("unterminated label value: {s}")),
                Some(b'"') => break,
                Some(b'\\') => {
                    match b.get(j + 1) {
                        Some(b'\\') => v.push('\\'),
                        Some(b'"') => v.push('"'),
                        Some(b'n') => v.push('\n'),
                        _ => return Err(format!("bad escape in {s}")),
                    }
                    j += 2;
                }
                Some(_) => {
                    let ch = s[j..].chars().next().unwrap();
                    v.push(ch);
                    j += ch.len_utf8();
                }
            }
        }
        if out.insert(name.to_string(), v).is_some() {
            return Err(format!("duplicate label {name}"));
        }
        i = j + 1;
        match b.get(i) {
            None => {}
            Some(b',') => i += 1,
            Some(_) => return Err(format!("junk after label value: {s}")),
        }
    }
    Ok(out)
}

fn parse_value(v: &str) -> Result<f64, String> {
    match v {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => v
            .parse::<f64>()
            .map_err(|e| format!("bad value {v:?}: {e}")),
    }
}

/// The sample-name suffixes a family of `kind` may use.
fn suffixes(kind: &str, openmetrics: bool) -> &'static [&'static str] {
    match (kind, openmetrics) {
        ("counter", true) => &["_total", "_created"],
        ("histogram", _) => &["_bucket", "_sum", "_count", "_created"],
        _ => &[""],
    }
}

/// Parses an exposition; `openmetrics` demands the OpenMetrics rules (`# EOF` last, counter
/// families named without `_total`).
pub fn parse(text: &str, openmetrics: bool) -> Result<Exposition, String> {
    let mut families: Vec<Family> = Vec::new();
    let mut seen_names = HashSet::new();
    let mut seen_samples = HashSet::new();
    let mut eof = false;
    for line in text.lines() {
        if eof {
            return Err(format!("text after # EOF: {line:?}"));
        }
        if line == "# EOF" {
            eof = true;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (what, name, arg) = (parts.next(), parts.next(), parts.next());
            let name = name.ok_or(format!("bad comment line {line:?}"))?;
            match what {
                Some("TYPE") => {
                    let kind = arg.ok_or(format!("TYPE without a type: {line:?}"))?;
                    if ![
                        "counter",
                        "gauge",
                        "histogram",
                        "summary",
                        "untyped",
                        "unknown",
                    ]
                    .contains(&kind)
                    {
                        return Err(format!("unknown type {kind}"));
                    }
                    if !seen_names.insert(name.to_string()) {
                        return Err(format!("family {name} declared twice"));
                    }
                    if let Some(f) = families.last_mut().filter(|f| f.name == name) {
                        f.kind = kind.to_string();
                    } else {
                        families.push(Family {
                            name: name.to_string(),
                            kind: kind.to_string(),
                            help: None,
                            samples: Vec::new(),
                        });
                    }
                }
                Some("HELP") => {
                    if families.last().is_some_and(|f| f.name == name) {
                        families.last_mut().unwrap().help = arg.map(str::to_string);
                    } else {
                        families.push(Family {
                            name: name.to_string(),
                            kind: "untyped".into(),
                            help: arg.map(str::to_string),
                            samples: Vec::new(),
                        });
                    }
                }
                Some("UNIT") if openmetrics => {
                    let unit = arg.unwrap_or("");
                    if !name.ends_with(&format!("_{unit}")) {
                        return Err(format!("family {name} does not end with its unit {unit}"));
                    }
                }
                _ => return Err(format!("unknown comment line {line:?}")),
            }
            continue;
        }
        if line.is_empty() {
            if openmetrics {
                return Err("empty line in OpenMetrics text".into());
            }
            continue;
        }
        let (name_labels, value) = line
            .rsplit_once(' ')
            .ok_or(format!("sample without a value: {line:?}"))?;
        let (name, labels) = match name_labels.split_once('{') {
            Some((n, l)) => (
                n,
                parse_labels(
                    l.strip_suffix('}')
                        .ok_or(format!("labels not closed: {line:?}"))?,
                )?,
            ),
            None => (name_labels, BTreeMap::new()),
        };
        let fam = families
            .last_mut()
            .ok_or(format!("sample before any family: {line:?}"))?;
        if openmetrics && fam.kind == "counter" && fam.name.ends_with("_total") {
            return Err(format!("OpenMetrics counter family named {}", fam.name));
        }
        let ok = suffixes(&fam.kind, openmetrics)
            .iter()
            .any(|s| name == format!("{}{s}", fam.name));
        if !ok {
            return Err(format!(
                "sample {name} does not belong to family {} ({})",
                fam.name, fam.kind
            ));
        }
        if !seen_samples.insert(format!("{name}{labels:?}")) {
            return Err(format!("duplicate sample {line:?}"));
        }
        fam.samples.push(Sample {
            name: name.to_string(),
            labels,
            value: parse_value(value)?,
        });
    }
    if openmetrics && !eof {
        return Err("no # EOF at the end".into());
    }
    Ok(Exposition { families })
}

impl Exposition {
    /// The family called `name`.
    pub fn family(&self, name: &str) -> &Family {
        self.families
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no family {name}"))
    }

    /// Samples called `name` whose labels include every pair of `want`.
    pub fn samples<'a>(&'a self, name: &'a str, want: &'a [(&'a str, &'a str)]) -> Vec<&'a Sample> {
        self.families
            .iter()
            .flat_map(|f| &f.samples)
            .filter(|s| {
                s.name == name
                    && want
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The sum of the samples [`Exposition::samples`] selects.
    pub fn sum(&self, name: &str, want: &[(&str, &str)]) -> f64 {
        self.samples(name, want).iter().map(|s| s.value).sum()
    }
}

/// `Key: value` lines of mod_status's `?auto` report.
pub fn auto_lines(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
