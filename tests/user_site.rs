//! The Apache user's per-user site-packages directory (`~/.local/lib/pythonX.Y/site-packages`
//! of www-data, whose home is /var/www) is never on `sys.path`: whoever can write to the
//! Apache user's home must not be able to shadow the application's imports.
mod common;
use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A marker module in the Apache user's site-packages directory; the module file, and the
/// directories this test created if empty by then, are removed on drop (parallel runs share
/// directories, never files).
struct UserSiteMarker {
    site: PathBuf,
    module: String,
    created: Vec<PathBuf>,
}

impl UserSiteMarker {
    fn new() -> UserSiteMarker {
        let out = Command::new("/usr/bin/python3")
            .args(["-s", "-c", "import site; print(site.getusersitepackages())"])
            .env_clear()
            .env("HOME", apache_user_home())
            .output()
            .expect("run /usr/bin/python3");
        assert!(out.status.success(), "{out:?}");
        let site = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
        let mut created = Vec::new();
        let mut dir = site.as_path();
        while !dir.exists() {
            created.push(dir.to_path_buf());
            dir = dir.parent().expect("a parent directory");
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let module = format!("rwsgi_user_site_{}_{nanos:x}", std::process::id());
        let file = site.join(format!("{module}.py"));
        // A run in another process may remove the (then empty) directories between our
        // creating them and writing the file: try again.
        let mut written = Err(std::io::Error::other("not tried"));
        for _ in 0..5 {
            written = fs::create_dir_all(&site)
                .and_then(|_| fs::write(&file, "VALUE = 'from the user site directory'\n"));
            if written.is_ok() {
                break;
            }
        }
        written.unwrap_or_else(|e| panic!("writing {}: {e}", file.display()));
        for d in created.iter().chain([&file]) {
            let mode = if d == &file { 0o644 } else { 0o755 };
            let _ = fs::set_permissions(d, fs::Permissions::from_mode(mode));
        }
        UserSiteMarker {
            site,
            module,
            created,
        }
    }
}

impl Drop for UserSiteMarker {
    fn drop(&mut self) {
        let _ = fs::remove_file(self.site.join(format!("{}.py", self.module)));
        // Deepest first; a directory another run still uses is not empty and stays.
        for d in &self.created {
            let _ = fs::remove_dir(d);
        }
    }
}

/// The home directory of Apache's `User` (www-data) from the password database.
fn apache_user_home() -> String {
    let passwd = fs::read_to_string("/etc/passwd").unwrap();
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&"www-data"))
        .and_then(|f| f.get(5).map(|h| h.to_string()))
        .expect("www-data in /etc/passwd")
}

#[test]
fn user_site_directory_is_not_used() {
    let marker = UserSiteMarker::new();
    assert!(Path::new(&marker.site).is_dir());
    let srv = server("user_site")
        .conf("WSGIScriptAlias /site \"@APPS@/user_site.wsgi\"")
        .conf("WSGIScriptAlias /site-global \"@APPS@/user_site.wsgi\" application-group=%{GLOBAL}")
        .start();
    for path in ["/site", "/site-global"] {
        let r = srv.get(&format!("{path}?{}", marker.module));
        assert_eq!(r.status, 200, "{path}: {}", r.describe());
        let j = r.json();
        // The test put its marker where this interpreter would look.
        assert_eq!(j.s("user_site"), marker.site.display().to_string(), "{j:?}");
        assert!(!j.b("imported"), "{path}: user site module imported: {j:?}");
        assert!(!j.b("user_site_on_path"), "{path}: {j:?}");
        assert!(!j.b("enable_user_site"), "{path}: {j:?}");
        assert_eq!(j.n("no_user_site_flag"), 1.0, "{path}: {j:?}");
    }
}
