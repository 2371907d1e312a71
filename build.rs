//! Build script: asks `apxs` where httpd/APR headers live, generates the FFI bindings with
//! bindgen, compiles the C glue for what only C macros express, and records the Python
//! version the module is built against (checked again at load time).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the httpd and APR headers are, as `apxs` reports them.
struct ApacheBuild {
    include_dirs: Vec<PathBuf>,
    defines: Vec<String>,
}

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(1);
}

fn apxs_query(apxs: &str, var: &str) -> String {
    let out = Command::new(apxs)
        .args(["-q", var])
        .output()
        .unwrap_or_else(|e| {
            fail(&format!(
                "cannot run `{apxs}` ({e}): install the Debian package apache2-dev (or set APXS)"
            ))
        });
    if !out.status.success() {
        fail(&format!(
            "`{apxs} -q {var}` failed: install the Debian package apache2-dev"
        ));
    }
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn apache_build() -> ApacheBuild {
    println!("cargo:rerun-if-env-changed=APXS");
    let apxs = env::var("APXS").unwrap_or_else(|_| "apxs".to_string());
    let mut include_dirs = Vec::new();
    for var in ["INCLUDEDIR", "APR_INCLUDEDIR", "APU_INCLUDEDIR"] {
        let dir = PathBuf::from(apxs_query(&apxs, var));
        if !dir.as_os_str().is_empty() && !include_dirs.contains(&dir) {
            include_dirs.push(dir);
        }
    }
    if !include_dirs[0].join("httpd.h").exists() {
        fail("httpd.h not found where apxs says: install the Debian package apache2-dev");
    }
    if !include_dirs.iter().any(|d| d.join("apr.h").exists()) {
        fail("apr.h not found where apxs says: install the Debian package libapr1-dev");
    }
    let defines = apxs_query(&apxs, "EXTRA_CPPFLAGS")
        .split_whitespace()
        .filter(|f| f.starts_with("-D"))
        .map(str::to_string)
        .collect();
    ApacheBuild {
        include_dirs,
        defines,
    }
}

fn generate_bindings(ab: &ApacheBuild, out: &Path) {
    println!("cargo:rerun-if-changed=include/wrapper.h");
    println!("cargo:rerun-if-changed=include/rwsgi_glue.h");
    let mut builder = bindgen::Builder::default()
        .header("include/wrapper.h")
        .clang_arg("-Iinclude")
        .allowlist_function("(ap|apr|apu|rwsgi)_.*")
        .allowlist_type("(ap|apr|apu)_.*|authn_provider|authz_provider|authn_status|authz_status|request_rec|conn_rec|server_rec|module|command_rec|cmd_parms|process_rec")
        .allowlist_var("(AP|APR|APLOG|HTTP|MODULE_MAGIC|OR|RSRC|ACCESS|OPT|M|RWSGI)_.*|OK|DECLINED|DONE|SUSPENDED|RSRC_CONF|ACCESS_CONF|GLOBAL_ONLY|NOT_IN_.*|REMOTE_(HOST|NAME)")
        .blocklist_function(".*_(vformatter|vsnprintf|pvsprintf|vlog|log_cerror_|log_perror_)")
        .default_enum_style(bindgen::EnumVariation::Consts)
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .wrap_unsafe_ops(true)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for dir in &ab.include_dirs {
        builder = builder.clang_arg(format!("-I{}", dir.display()));
    }
    for d in &ab.defines {
        builder = builder.clang_arg(d);
    }
    let bindings = builder.generate().unwrap_or_else(|e| {
        fail(&format!(
            "bindgen failed ({e}); if libclang is missing install the Debian package libclang-dev"
        ))
    });
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("write bindings.rs");
}

fn compile_glue(ab: &ApacheBuild) {
    println!("cargo:rerun-if-changed=apache/glue.c");
    let mut build = cc::Build::new();
    build
        .file("apache/glue.c")
        .include("include")
        .warnings(true);
    for dir in &ab.include_dirs {
        build.include(dir);
    }
    for d in &ab.defines {
        let d = d.trim_start_matches("-D");
        match d.split_once('=') {
            Some((k, v)) => build.define(k, v),
            None => build.define(d, None),
        };
    }
    build.compile("rwsgi_glue");
}

fn python_version() {
    let cfg = pyo3_build_config::get();
    let v = cfg.version();
    println!("cargo:rustc-env=RWSGI_BUILD_PYTHON={}.{}", v.major, v.minor);
    // The interpreter the build used: the embedded Python reports it as sys.executable.
    println!(
        "cargo:rustc-env=RWSGI_BUILD_PYTHON_EXE={}",
        cfg.executable().unwrap_or("")
    );
}

fn main() {
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let ab = apache_build();
    generate_bindings(&ab, &out);
    compile_glue(&ab);
    python_version();
}
