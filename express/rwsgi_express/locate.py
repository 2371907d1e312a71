"""Finds what a server needs on this machine: the httpd binary, Apache's module directory, the
mod_rwsgi module and the MIME types file. Only the file system is consulted (no apxs), so a
machine with Apache but without its development files can run the command."""

import os
import shutil

# Debian/Ubuntu name the binary apache2, Red Hat/SUSE/source builds httpd.
HTTPD_NAMES = ("apache2", "httpd")
HTTPD_EXTRA_DIRS = ("/usr/sbin", "/usr/local/sbin", "/usr/local/apache2/bin", "/opt/apache2/bin")

MODULE_DIRS = (
    "/usr/lib/apache2/modules",  # Debian, Ubuntu
    "/usr/lib64/httpd/modules",  # Red Hat, Fedora (64-bit)
    "/usr/lib/httpd/modules",
    "/usr/lib64/apache2",  # SUSE
    "/usr/lib/apache2",
    "/usr/libexec/apache2",  # Alpine, macOS
    "/usr/local/apache2/modules",  # source build default
)

MODULE_FILE = "mod_rwsgi.so"
MIME_TYPES = ("/etc/mime.types", "/etc/apache2/mime.types", "/etc/httpd/conf/mime.types")


class NotFound(Exception):
    """A file the server needs is missing; the message names what was searched."""


def httpd_executable(override=None):
    """The Apache binary: the override (or $HTTPD), else apache2/httpd on PATH or in sbin."""
    override = override or os.environ.get("HTTPD")
    if override:
        path = shutil.which(override) if os.sep not in override else override
        if path and os.access(path, os.X_OK):
            return os.path.abspath(path)
        raise NotFound("Apache executable %r is not an executable file" % override)
    search = os.pathsep.join([os.environ.get("PATH", "")] + list(HTTPD_EXTRA_DIRS))
    for name in HTTPD_NAMES:
        path = shutil.which(name, path=search)
        if path:
            return os.path.abspath(path)
    raise NotFound(
        "no Apache httpd found (looked for %s on PATH and in %s); install Apache 2.4 "
        "(Debian: apt-get install apache2) or pass --httpd-executable"
        % (" or ".join(HTTPD_NAMES), ", ".join(HTTPD_EXTRA_DIRS))
    )


def modules_directory(override=None):
    """Apache's directory of loadable modules: the one that holds its MPM modules."""
    if override:
        if not os.path.isdir(override):
            raise NotFound("modules directory %r does not exist" % override)
        return os.path.abspath(override)
    for d in MODULE_DIRS:
        if any(os.path.exists(os.path.join(d, "mod_mpm_%s.so" % m)) for m in ("event", "worker", "prefork")):
            return d
    raise NotFound(
        "no Apache module directory found (looked in %s); pass --modules-directory"
        % ", ".join(MODULE_DIRS)
    )


def module_candidates(modules_dir):
    """Where mod_rwsgi.so may be, in order: inside this package (a wheel), the checkout's
    target/ (after `make build`), then the system's Apache module directories."""
    here = os.path.dirname(os.path.abspath(__file__))
    found = [os.path.join(here, MODULE_FILE)]
    checkout = os.path.dirname(os.path.dirname(here))
    if os.path.isfile(os.path.join(checkout, "Cargo.toml")):
        found.append(os.path.join(checkout, "target", MODULE_FILE))
    if modules_dir:
        found.append(os.path.join(modules_dir, MODULE_FILE))
    found.append(os.path.join("/usr/lib/apache2/modules", MODULE_FILE))
    return list(dict.fromkeys(found))


def rwsgi_module(override=None, modules_dir=None):
    """The mod_rwsgi.so to load: the override, else the first of module_candidates()."""
    if override:
        if not os.path.isfile(override):
            raise NotFound("module %r does not exist" % override)
        return os.path.abspath(override)
    candidates = module_candidates(modules_dir)
    for path in candidates:
        if os.path.isfile(path):
            return path
    raise NotFound(
        "mod_rwsgi.so not found (looked at %s); run `make build` in the checkout, install "
        "the libapache2-mod-rwsgi package, or pass --module" % ", ".join(candidates)
    )


def mime_types():
    """The system MIME types file, or None (Apache then serves static files untyped)."""
    for path in MIME_TYPES:
        if os.path.isfile(path):
            return path
    return None
