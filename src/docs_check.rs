//! The reference docs list everything the code knows: a directive or log id added without
//! its row in `docs/` fails here.

use crate::log_ids::TABLE as LOG_IDS;
use std::path::PathBuf;

fn doc(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("docs")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
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
