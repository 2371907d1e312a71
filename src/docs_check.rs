//! The reference docs list everything the code knows: a directive or log id added without
//! its row in `docs/` fails here.

use crate::config::directives::TABLE as DIRECTIVES;
use crate::log_ids::TABLE as LOG_IDS;
use std::path::PathBuf;

fn doc(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("docs")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The first cell of each table row, without its backquotes.
fn first_cells(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix('|'))
        .filter_map(|l| l.split('|').next())
        // A section is documented as `<Name>`; its command is `<Name`.
        .map(|c| c.trim().trim_matches('`').trim_end_matches('>').to_string())
        .collect()
}

#[test]
fn every_directive_has_a_row_in_directives_md() {
    let cells = first_cells(&doc("directives.md"));
    for d in DIRECTIVES {
        let name = d.name.to_str().unwrap();
        assert!(
            cells.iter().any(|c| c == name),
            "docs/directives.md has no row for {name}"
        );
    }
}

#[test]
fn every_test_named_in_directives_md_exists() {
    let text = doc("directives.md");
    let tests = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut named = 0;
    for quoted in text.split('`').skip(1).step_by(2) {
        let Some((file, func)) = quoted.split_once(".rs::") else {
            continue;
        };
        let word = |w: &str| w.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !word(file) || !word(func) {
            continue;
        }
        let src = std::fs::read_to_string(tests.join(format!("{file}.rs")))
            .unwrap_or_else(|e| panic!("docs/directives.md names tests/{file}.rs: {e}"));
        // A test run in both modes is `fn name(mode: Mode)` (tests/common/modes.rs).
        assert!(
            src.contains(&format!("fn {func}()"))
                || src.contains(&format!("fn {func}(mode: Mode)")),
            "docs/directives.md names {quoted}, which does not exist"
        );
        named += 1;
    }
    assert!(named > DIRECTIVES.len(), "only {named} tests named");
}

/// `## RWSGInnnn (level): …` headings: (id, level).
fn sections(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("## RWSGI"))
        .map(|rest| {
            let id = format!("RWSGI{}", rest.get(..4).unwrap_or(rest));
            let level = rest
                .split_once('(')
                .and_then(|(_, r)| r.split_once(')'))
                .map(|(l, _)| l.to_string())
                .unwrap_or_default();
            (id, level)
        })
        .collect()
}

#[test]
fn troubleshooting_md_has_one_section_per_log_id_and_no_other() {
    let text = doc("troubleshooting.md");
    let found = sections(&text);
    let ids: Vec<&str> = found.iter().map(|(id, _)| id.as_str()).collect();
    let table: Vec<&str> = LOG_IDS.iter().map(|e| e.id).collect();
    assert_eq!(
        ids, table,
        "sections of docs/troubleshooting.md vs src/log_ids.rs"
    );
    for ((id, level), e) in found.iter().zip(LOG_IDS) {
        assert_eq!(level, e.level, "level of {id} in docs/troubleshooting.md");
    }
    // No id mentioned in the text that the code does not log.
    let mut rest = text.as_str();
    while let Some(at) = rest.find("RWSGI") {
        let id = rest[at..].get(..9).unwrap_or(&rest[at..]);
        if id[5..].bytes().all(|b| b.is_ascii_digit()) && id.len() == 9 {
            assert!(
                table.contains(&id),
                "docs/troubleshooting.md mentions unknown {id}"
            );
        }
        rest = &rest[at + 5..];
    }
}
