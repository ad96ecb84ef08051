"""The digest memo through the tcache command (PROTOCOL.md, "The digest
memo"): on by default under $XDG_CACHE_HOME, ours alone, off with
TCACHE_MEMO=off, and never the cause of a stale key: a file edited right
after a lookup, in the same second, with its size and mtime kept, changes
the key."""

import hashlib
import os
import stat
import time

from conftest import expected_cli_key

# memo.c's racy window, and a margin: files older than this are remembered.
WINDOW_S = 2.2


def cache_env(tmpbase, **extra):
    env = {"XDG_CACHE_HOME": os.path.join(tmpbase, "cache")}
    env.update(extra)
    return env


def memo_file(tmpbase):
    return os.path.join(tmpbase, "cache", "tcache", "digests")


def key(daemon, project, env, *deps):
    args = ["key", "--test", "t", "--root", project.root]
    for d in deps or ("src",):
        args += ["--dep", d]
    r = daemon.cli(*args, env=env)
    assert r.rc == 0, r
    return r.stdout.strip()


def rewrite_keeping_stat(path, text):
    """Same size, mtime and atime set back: only ctime and bytes move."""
    st = os.stat(path)
    assert len(text.encode()) == st.st_size
    with open(path, "w") as f:
        f.write(text)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    now = os.stat(path)
    assert (now.st_size, now.st_mtime_ns, now.st_ino) == \
        (st.st_size, st.st_mtime_ns, st.st_ino)


def test_edit_right_after_lookup_changes_key(daemon, project, tmpbase):
    env = cache_env(tmpbase)
    time.sleep(WINDOW_S)            # the project's files can be remembered
    r = daemon.cli("record", "--test", "t", "--outcome", "pass",
                   "--root", project.root, "--dep", "src", env=env)
    assert r.rc == 0, r
    r = daemon.cli("lookup", "--test", "t", "--root", project.root,
                   "--dep", "src", env=env)
    assert r.rc == 0 and "hit" in r.stdout, r
    # The lookup remembered src/a.c: a warm lookup would not read it.
    with open(memo_file(tmpbase), "rb") as f:
        assert project.path("src/a.c").encode() in f.read()
    before = key(daemon, project, env)

    t0 = time.time()
    rewrite_keeping_stat(project.path("src/a.c"), "int a = 7;\n")
    r = daemon.cli("lookup", "--test", "t", "--root", project.root,
                   "--dep", "src", env=env)
    assert time.time() - t0 < 1.0, "not right after"
    assert r.rc == 1 and "miss" in r.stdout, r
    after = key(daemon, project, env)
    assert after != before
    assert after == expected_cli_key(project.root, ["src"])

    # Past the window, with the edit remembered: still the new key, and the
    # old one back when the old bytes are.
    time.sleep(WINDOW_S)
    assert key(daemon, project, env) == after
    rewrite_keeping_stat(project.path("src/a.c"), "int a = 1;\n")
    assert key(daemon, project, env) == before
    r = daemon.cli("lookup", "--test", "t", "--root", project.root,
                   "--dep", "src", env=env)
    assert r.rc == 0 and "hit" in r.stdout, r


def test_memo_is_ours_and_can_be_off(daemon, project, tmpbase):
    env = cache_env(tmpbase)
    want = expected_cli_key(project.root, ["src", "srcx"])
    assert key(daemon, project, dict(env, TCACHE_MEMO="off"),
               "src", "srcx") == want
    assert not os.path.exists(os.path.join(tmpbase, "cache", "tcache"))

    time.sleep(WINDOW_S)
    assert key(daemon, project, env, "src", "srcx") == want     # cold
    assert key(daemon, project, env, "src", "srcx") == want     # warm
    st = os.stat(memo_file(tmpbase))
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == os.geteuid()
    assert stat.S_IMODE(os.stat(os.path.dirname(memo_file(tmpbase)))
                        .st_mode) == 0o700

    # TCACHE_MEMO names the file.
    other = os.path.join(tmpbase, "cache", "tcache", "other")
    assert key(daemon, project, dict(env, TCACHE_MEMO=other),
               "src", "srcx") == want
    assert os.path.exists(other)

    # Damaged: ignored, the key right, a good memo written in its place.
    with open(memo_file(tmpbase), "r+b") as f:
        f.seek(40)
        b = f.read(1)
        f.seek(40)
        f.write(bytes([b[0] ^ 0xFF]))
    # Replaced by rename: a new inode (an mtime could fall in the same tick).
    damaged = os.stat(memo_file(tmpbase)).st_ino
    assert key(daemon, project, env, "src", "srcx") == want
    assert os.stat(memo_file(tmpbase)).st_ino != damaged


def test_hash_command_uses_memo(daemon, project, tmpbase):
    env = cache_env(tmpbase)
    time.sleep(WINDOW_S)
    r = daemon.cli("hash", "src/a.c", env=env)
    assert r.rc == 0, r
    assert os.path.exists(memo_file(tmpbase))
    rewrite_keeping_stat(project.path("src/a.c"), "int a = 9;\n")
    r = daemon.cli("hash", "src/a.c", env=env)
    assert r.rc == 0, r
    want = hashlib.blake2b(b"int a = 9;\n", digest_size=32).hexdigest()
    assert r.stdout == "%s  src/a.c\n" % want
