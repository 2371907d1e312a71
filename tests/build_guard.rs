//! A build without `--cfg pyo3_disable_reference_pool` stops with a clear error instead of
//! producing a module that silently defers Python reference drops across interpreters.
//! The guard lives in `src/build_guard.rs`, compiled here alone with rustc (a full `cargo
//! check` without the cfg rebuilds every dependency: over a minute).
use std::path::{Path, PathBuf};
use std::process::Command;

/// The rustc of the toolchain running the tests (beside `cargo`).
fn rustc() -> PathBuf {
    if let Some(r) = std::env::var_os("RUSTC") {
        return PathBuf::from(r);
    }
    std::env::var_os("CARGO")
        .map(PathBuf::from)
        .and_then(|c| Some(c.parent()?.join("rustc")))
        .filter(|r| r.is_file())
        .unwrap_or_else(|| PathBuf::from("rustc"))
}

/// Compiles the guard with `extra` flags; (success, stderr).
fn compile_guard(extra: &[&str]) -> (bool, String) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::env::temp_dir().join(format!("rwsgi-build-guard-{}", std::process::id()));
    let res = Command::new(rustc())
        .args([
            "--edition",
            "2024",
            "--crate-type",
            "lib",
            "--emit",
            "metadata",
        ])
        .args(["--crate-name", "rwsgi_build_guard", "-o"])
        .arg(&out)
        .args(extra)
        .arg(repo.join("src/build_guard.rs"))
        .output()
        .expect("run rustc");
    let _ = std::fs::remove_file(&out);
    (
        res.status.success(),
        String::from_utf8_lossy(&res.stderr).into_owned(),
    )
}

#[test]
fn build_without_reference_pool_cfg_fails_with_the_cure() {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    assert!(
        lib.lines().any(|l| l.trim() == "mod build_guard;"),
        "src/lib.rs no longer includes the build guard"
    );
    let (ok, stderr) = compile_guard(&["--cfg", "rwsgi_unrelated"]);
    assert!(!ok, "compiled without the cfg:\n{stderr}");
    assert!(
        stderr.contains("mod_rwsgi must be built with `--cfg pyo3_disable_reference_pool`")
            && stderr.contains("RUSTFLAGS"),
        "{stderr}"
    );
    let (ok, stderr) = compile_guard(&["--cfg", "pyo3_disable_reference_pool"]);
    assert!(ok, "failed with the cfg:\n{stderr}");
}
