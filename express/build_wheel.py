"""Builds the mod_rwsgi wheel: the rwsgi_express package, mod_rwsgi.so inside it, and the
`rwsgi-express` console script, so that `pip install` gives a venv both the module and the
command (as PyPI's mod_wsgi does for mod_wsgi-express).

It is a PEP 517 build backend (pyproject.toml names it, so `pip wheel .` and `pip install .`
work) and a command: `python3 express/build_wheel.py DIST_DIR [--module FILE]`. Standard
library only; the wheel is zipped by the binary distribution format spec.

The module must be built first (`make build` writes target/mod_rwsgi.so). The wheel's tags come
from that file: cpXY from the libpython it links (the module embeds that CPython and only runs
with it), and linux_<machine>.
"""

import base64
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "rwsgi_express"
DIST_NAME = "mod_rwsgi"

DEFAULT_MODULE = os.path.join(ROOT, "target", "mod_rwsgi.so")


def cargo_field(name):
    """A field of Cargo.toml's [package] table (one source for the version and licence)."""
    section = None
    with open(os.path.join(ROOT, "Cargo.toml")) as f:
        for line in f:
            line = line.strip()
            if line.startswith("["):
                section = line
            elif section == "[package]":
                m = re.match(r'%s\s*=\s*"([^"]*)"' % re.escape(name), line)
                if m:
                    return m.group(1)
    return None


def python_tag(module):
    """cpXY of the libpython the module links (its DT_NEEDED entry)."""
    with open(module, "rb") as f:
        m = re.search(rb"libpython(\d)\.(\d+)\.so", f.read())
    if not m:
        raise SystemExit("%s does not link a libpython3.X.so; is it mod_rwsgi?" % module)
    return "cp%s%s" % (m.group(1).decode(), m.group(2).decode()), "%s.%s" % (
        m.group(1).decode(), m.group(2).decode())


def platform_tag():
    return "linux_%s" % os.uname().machine.replace("-", "_").replace(".", "_")


def stripped(module):
    """The module's bytes without debug symbols (a tenth of the size), when strip exists."""
    strip = shutil.which("strip")
    if strip:
        with tempfile.TemporaryDirectory() as tmp:
            copy = os.path.join(tmp, "mod_rwsgi.so")
            shutil.copyfile(module, copy)
            if subprocess.run([strip, "--strip-debug", copy]).returncode == 0:
                with open(copy, "rb") as f:
                    return f.read()
    with open(module, "rb") as f:
        return f.read()


def record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return "%s,sha256=%s,%d" % (name, digest, len(data))


def package_files():
    """(name in the wheel, bytes, mode) of the Python package, without caches."""
    src = os.path.join(ROOT, "express", PACKAGE)
    out = []
    for name in sorted(os.listdir(src)):
        if name.endswith(".py"):
            with open(os.path.join(src, name), "rb") as f:
                out.append(("%s/%s" % (PACKAGE, name), f.read(), 0o644))
    return out


def build(wheel_directory, module=None):
    """Write the wheel into wheel_directory; return its file name."""
    module = os.path.abspath(module or os.environ.get("RWSGI_WHEEL_MODULE") or DEFAULT_MODULE)
    if not os.path.isfile(module):
        raise SystemExit("%s is missing: run `make build` first (or pass --module FILE)" % module)
    version = cargo_field("version")
    pytag, pyversion = python_tag(module)
    tag = "%s-%s-%s" % (pytag, pytag, platform_tag())
    dist_info = "%s-%s.dist-info" % (DIST_NAME, version)
    so = stripped(module)
    files = package_files() + [("%s/mod_rwsgi.so" % PACKAGE, so, 0o755)]
    metadata = (
        "Metadata-Version: 2.1\nName: %s\nVersion: %s\nSummary: %s\nLicense: %s\n"
        "Requires-Python: ==%s.*\n" % (DIST_NAME, version, cargo_field("description"), cargo_field("license") or "UNKNOWN", pyversion)
    )
    wheel = "Wheel-Version: 1.0\nGenerator: mod_rwsgi express/build_wheel.py\nRoot-Is-Purelib: false\nTag: %s\n" % tag
    entry_points = "[console_scripts]\nrwsgi-express = %s.cli:main\n" % PACKAGE
    files += [
        ("%s/METADATA" % dist_info, metadata.encode(), 0o644),
        ("%s/WHEEL" % dist_info, wheel.encode(), 0o644),
        ("%s/entry_points.txt" % dist_info, entry_points.encode(), 0o644),
    ]
    record = [record_line(n, d) for n, d, _ in files] + ["%s/RECORD,," % dist_info]
    files.append(("%s/RECORD" % dist_info, ("\n".join(record) + "\n").encode(), 0o644))

    name = "%s-%s-%s.whl" % (DIST_NAME, version, tag)
    os.makedirs(wheel_directory, exist_ok=True)
    buf = io.BytesIO()
    # A fixed date: the same inputs give the same wheel.
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for n, data, mode in files:
            info = zipfile.ZipInfo(n, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    path = os.path.join(wheel_directory, name)
    with open(path + ".tmp", "wb") as f:
        f.write(buf.getvalue())
    os.replace(path + ".tmp", path)
    return name


# PEP 517 hooks. No build requirements: the module comes from `make build`.
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    module = (config_settings or {}).get("module")
    return build(wheel_directory, module)


def get_requires_for_build_wheel(config_settings=None):
    return []


def main(argv):
    import argparse

    p = argparse.ArgumentParser(description="Build the mod_rwsgi wheel into DIST_DIR.")
    p.add_argument("dist_dir")
    p.add_argument("--module", help="mod_rwsgi.so to ship (default target/mod_rwsgi.so)")
    a = p.parse_args(argv)
    print(os.path.join(a.dist_dir, build(a.dist_dir, a.module)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
