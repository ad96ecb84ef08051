"""make install into a DESTDIR, a program built against the installed
libtcache with pkg-config (shared and static) and run against the installed
tcached, and make uninstall.

The install uses the build the other tests use ($TCACHE_BUILD) and does not
rebuild it (`make -o all`): tests may run while sources are edited, and a
rebuild would change the binaries under the other tests.
"""

import glob
import os
import re
import shutil
import subprocess

import conftest
from conftest import BUILD, Daemon, Raw

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PREFIX = "/usr/local"


def _makefile_var(name):
    with open(os.path.join(REPO, "Makefile")) as f:
        m = re.search(r"^%s\s*=\s*(\S+)\s*$" % name, f.read(), re.M)
    assert m, "Makefile sets no %s" % name
    return m.group(1)


VERSION = _makefile_var("VERSION")
SOVERSION = _makefile_var("SOVERSION")


def _needed(path):
    out = subprocess.run(["readelf", "-d", path], stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^]]+)\]", out), out


def _build_problem():
    """Why this build cannot be installed as it is, or None."""
    for f in ("tcached", "tcache", "libtcache.a", "libtcache.so"):
        p = os.path.join(BUILD, f)
        if not os.path.isfile(p) or os.path.islink(p):
            return "%s is not a make build (no %s)" % (BUILD, f)
    with open(os.path.join(BUILD, "tcached"), "rb") as f:
        if f.read(4) != b"\x7fELF":
            return "%s/tcached is a wrapper, not the build's binary" % BUILD
    needed, _ = _needed(os.path.join(BUILD, "libtcache.so"))
    if any(n.startswith(("libasan", "libubsan", "libtsan")) for n in needed):
        return ("libtcache in %s is built with sanitizers, which every program "
                "linked with it would need; the plain build's run covers "
                "install" % BUILD)
    return None


pytestmark = pytest.mark.skipif(_build_problem() is not None,
                                reason=str(_build_problem()))


def make(*targets, destdir, check=True):
    """make TARGETS from the checkout into destdir, on $TCACHE_BUILD."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    cp = subprocess.run(
        ["make", "--no-print-directory", "-o", "all", *targets,
         "BUILD=" + BUILD, "PREFIX=" + PREFIX, "DESTDIR=" + destdir],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        universal_newlines=True, timeout=120)
    if check:
        assert cp.returncode == 0, "make %s failed:\n%s" % (" ".join(targets),
                                                            cp.stdout)
    return cp


def expected_files():
    """{path under DESTDIR: source in the checkout or None}, by the rules the
    README gives: what is present in the tree now is what must be installed."""
    p = PREFIX.lstrip("/")
    files = {
        p + "/bin/tcached": os.path.join(BUILD, "tcached"),
        p + "/bin/tcache": os.path.join(BUILD, "tcache"),
        p + "/include/tcache.h": os.path.join(REPO, "client", "tcache.h"),
        p + "/lib/libtcache.a": os.path.join(BUILD, "libtcache.a"),
        p + "/lib/libtcache.so.%s" % VERSION: os.path.join(BUILD, "libtcache.so"),
        p + "/lib/libtcache.so.%s" % SOVERSION: None,
        p + "/lib/libtcache.so": None,
        p + "/lib/pkgconfig/tcache.pc": None,
        p + "/share/doc/tcache/tcached.conf.example":
            os.path.join(REPO, "contrib", "tcached.conf.example"),
    }
    for f in glob.glob(os.path.join(REPO, "man", "*.[1-8]")):
        files["%s/share/man/man%s/%s" % (p, f[-1], os.path.basename(f))] = f
    comp = os.path.join(REPO, "contrib", "completions")
    for f in glob.glob(os.path.join(comp, "*.bash")):
        name = os.path.basename(f)[:-len(".bash")]
        files[p + "/share/bash-completion/completions/" + name] = f
    for f in glob.glob(os.path.join(comp, "_*")) + glob.glob(os.path.join(comp, "*.zsh")):
        name = os.path.basename(f)
        name = name[:-len(".zsh")] if name.endswith(".zsh") else name
        files[p + "/share/zsh/site-functions/_" + name.lstrip("_")] = f
    units = os.path.join(REPO, "contrib", "systemd")
    for f in glob.glob(os.path.join(units, "*.service")) + glob.glob(os.path.join(units, "*.socket")):
        files[p + "/lib/systemd/user/" + os.path.basename(f)] = None
    return files


def installed(destdir):
    """Every entry under destdir that is not a directory."""
    out = set()
    for d, dirs, names in os.walk(destdir):
        for n in names + [x for x in dirs if os.path.islink(os.path.join(d, x))]:
            out.add(os.path.relpath(os.path.join(d, n), destdir))
    return out


@pytest.fixture(scope="module")
def destdir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("destdir"))
    make("install", destdir=d)
    return d


def lib(destdir, name=""):
    return os.path.join(destdir, PREFIX.lstrip("/"), "lib", name)


def test_installed_files(destdir):
    want = expected_files()
    assert installed(destdir) == set(want)
    for rel, src in want.items():
        path = os.path.join(destdir, rel)
        if src is not None:
            with open(path, "rb") as a, open(src, "rb") as b:
                assert a.read() == b.read(), "%s is not a copy of %s" % (rel, src)
        mode = os.lstat(path).st_mode & 0o777
        if "/bin/" in rel or rel.endswith(".so.%s" % VERSION):
            assert mode == 0o755, (rel, oct(mode))
        elif not os.path.islink(path):
            assert mode == 0o644, (rel, oct(mode))
        if "/systemd/user/" in rel:
            with open(path) as f:
                assert "@BINDIR@" not in f.read(), rel
    # The two links of the shared library, relative, ending at the real file.
    real = "libtcache.so.%s" % VERSION
    soname = "libtcache.so.%s" % SOVERSION
    assert os.readlink(lib(destdir, soname)) == real
    assert os.readlink(lib(destdir, "libtcache.so")) == soname
    assert os.path.realpath(lib(destdir, "libtcache.so")) == lib(destdir, real)
    # No file names the staging directory: DESTDIR is never recorded.
    for rel in want:
        path = os.path.join(destdir, rel)
        if not os.path.islink(path):
            with open(path, "rb") as f:
                assert destdir.encode() not in f.read(), rel


def test_soname_and_exports(destdir):
    _, dyn = _needed(lib(destdir, "libtcache.so.%s" % VERSION))
    assert "Library soname: [libtcache.so.%s]" % SOVERSION in dyn, dyn
    out = subprocess.run(["nm", "-D", "--defined-only",
                          lib(destdir, "libtcache.so.%s" % VERSION)],
                         stdout=subprocess.PIPE, universal_newlines=True,
                         check=True).stdout
    syms = [line.split()[-1] for line in out.splitlines() if line.strip()]
    assert "tc_lookup" in syms and "tc_record_put" in syms
    assert [s for s in syms if not s.startswith("tc_")] == [], \
        "libtcache.so exports more than the tc_ API"


def pkg_config(destdir, *args, sysroot=True):
    env = dict(os.environ)
    env["PKG_CONFIG_PATH"] = lib(destdir, "pkgconfig")
    env.pop("PKG_CONFIG_LIBDIR", None)
    env.pop("PKG_CONFIG_SYSROOT_DIR", None)
    if sysroot:
        env["PKG_CONFIG_SYSROOT_DIR"] = destdir
    cp = subprocess.run(["pkg-config", *args, "tcache"], env=env,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        universal_newlines=True)
    assert cp.returncode == 0, "pkg-config %s: %s" % (" ".join(args), cp.stderr)
    return cp.stdout.split()


def test_pkgconfig_file(destdir):
    # As the installed system will see it: no DESTDIR anywhere.
    assert pkg_config(destdir, "--modversion", sysroot=False) == [VERSION]
    assert pkg_config(destdir, "--variable=prefix", sysroot=False) == [PREFIX]
    assert pkg_config(destdir, "--libs", sysroot=False) == \
        ["-L%s/lib" % PREFIX, "-ltcache"]
    static = pkg_config(destdir, "--static", "--libs", sysroot=False)
    assert "-lsodium" in static and "-pthread" in static, static
    cflags = pkg_config(destdir, "--cflags", sysroot=False)
    assert "-I%s/include" % PREFIX in cflags, cflags


PROG = r"""
#include <stdio.h>
#include <string.h>
#include <tcache.h>

/* prog SOCKET TEST ROOT: records a pass of TEST, looks it up beside a key
 * never recorded; exits 0 only for a cached pass of the one and a miss of
 * the other. */
int main(int argc, char **argv)
{
	tc_options opts;
	tc_client *c;
	tc_record rec;
	tc_result res[2];
	tc_status st;
	uint8_t src[TC_DIGEST_BYTES], env[TC_DIGEST_BYTES];
	uint8_t keys[2][TC_DIGEST_BYTES];
	int ok;

	if (argc != 4) {
		fprintf(stderr, "usage: prog SOCKET TEST ROOT\n");
		return 2;
	}
	memset(&opts, 0, sizeof opts);
	opts.socket = argv[1];
	c = tc_client_new(&opts);
	if (c == NULL)
		return 2;
	if (tc_source_digest(NULL, 0, src) != TC_OK ||
	    tc_env_digest(NULL, 0, env) != TC_OK)
		return 2;
	tc_key_derive("install-test", argv[2], src, env, keys[0]);
	tc_key_derive("install-test", "never-recorded", src, env, keys[1]);

	memset(&rec, 0, sizeof rec);
	memcpy(rec.key, keys[0], sizeof rec.key);
	rec.project = "install-test";
	rec.test = argv[2];
	rec.root = argv[3];
	rec.outcome = TC_PASS;
	rec.duration_us = 1234;
	st = tc_record_put(c, &rec, 1, NULL);
	if (st != TC_OK) {
		fprintf(stderr, "record: %s: %s\n", tc_status_name(st),
			tc_client_error(c));
		return 1;
	}
	st = tc_lookup(c, (const uint8_t (*)[TC_DIGEST_BYTES])keys, 2, res);
	if (st != TC_OK) {
		fprintf(stderr, "lookup: %s: %s\n", tc_status_name(st),
			tc_client_error(c));
		return 1;
	}
	ok = tc_result_is_pass(&res[0]) && tc_result_verify(&res[0], argv[3]) &&
	     !res[1].found;
	printf("%s\n", ok ? "cached pass" : "no cached pass");
	tc_results_clear(res, 2);
	tc_client_free(c);
	return ok ? 0 : 1;
}
"""


@pytest.fixture
def installed_daemon(destdir, tmpbase, monkeypatch):
    """The installed tcached, checked ready by the installed tcache."""
    bindir = os.path.join(destdir, PREFIX.lstrip("/"), "bin")
    monkeypatch.setattr(conftest, "TCACHED", os.path.join(bindir, "tcached"))
    monkeypatch.setattr(conftest, "TCACHE", os.path.join(bindir, "tcache"))
    d = Daemon(tmpbase, "installed")
    d.start()
    yield d
    conftest._finish(d)


def compile_prog(tmpbase, out, flags, static=False):
    src = os.path.join(tmpbase, "prog.c")
    with open(src, "w") as f:
        f.write(PROG)
    cc = os.environ.get("CC") or shutil.which("cc") or "gcc"
    cmd = [cc, "-std=c11", "-Wall", "-Wextra", "-Werror", "-Wstrict-prototypes",
           "-o", os.path.join(tmpbase, out), src] + flags
    if static:
        cmd.insert(1, "-static")
    cp = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                        universal_newlines=True)
    assert cp.returncode == 0, "%s\n%s" % (" ".join(cmd), cp.stdout)
    return os.path.join(tmpbase, out)


def run_prog(prog, d, test, env_extra=None):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TCACHE_", "LD_"))}
    env.update(env_extra or {})
    cp = subprocess.run([prog, d.sock, test, d.base], env=env,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        universal_newlines=True, timeout=30)
    assert cp.returncode == 0, (cp.returncode, cp.stdout, cp.stderr)
    assert cp.stdout == "cached pass\n"
    # The daemon holds it: the program talked to this tcached.
    with Raw(d.sock) as r:
        entry, _ = r.explain("install-test", test)
    assert entry is not None and entry["outcome"] == conftest.PASS


def test_shared_build_and_run(destdir, installed_daemon, tmpbase):
    # A staged tree, as a packager sees it: the .pc's paths under a sysroot.
    flags = pkg_config(destdir, "--cflags", "--libs")
    assert "-I%s%s/include" % (destdir, PREFIX) in flags, flags
    assert "-L%s%s/lib" % (destdir, PREFIX) in flags, flags
    prog = compile_prog(tmpbase, "prog", flags)
    needed, _ = _needed(prog)
    assert "libtcache.so.%s" % SOVERSION in needed, needed
    libpath = {"LD_LIBRARY_PATH": lib(destdir)}
    ldd = subprocess.run(["ldd", prog], env=dict(os.environ, **libpath),
                         stdout=subprocess.PIPE, universal_newlines=True).stdout
    assert "=> %s" % lib(destdir, "libtcache.so.%s" % SOVERSION) in ldd, ldd
    run_prog(prog, installed_daemon, "shared", libpath)


def test_static_build_and_run(destdir, installed_daemon, tmpbase):
    # --define-prefix: the .pc moved with its tree finds libtcache.a there,
    # and its private requirements (libsodium, threads) complete the link.
    flags = pkg_config(destdir, "--define-prefix", "--static", "--cflags",
                       "--libs", sysroot=False)
    assert "-L%s%s/lib" % (destdir, PREFIX) in flags, flags
    prog = compile_prog(tmpbase, "prog-static", flags, static=True)
    needed, dyn = _needed(prog)
    assert needed == [], dyn
    run_prog(prog, installed_daemon, "static")


def test_uninstall_removes_everything(tmp_path):
    d = str(tmp_path / "destdir")
    make("install", destdir=d)
    assert installed(d) == set(expected_files())
    make("uninstall", destdir=d)
    assert installed(d) == set(), "left by make uninstall"
    # Twice is harmless: nothing to remove is no error.
    make("uninstall", destdir=d)
