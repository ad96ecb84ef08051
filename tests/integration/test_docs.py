"""The documentation agrees with the programs.

- `tcache --help`, `tcache help CMD`, `tcache CMD --help` and `tcached --help`
  are complete: every option the parsers accept (client/cli.c's cli_opts,
  daemon/main.c's main_options) is in the help, and every option in the help
  is accepted.
- man/tcache.1 has a subsection per command of `tcache --help` and no other,
  and each lists exactly the options of `tcache help CMD`, with the same
  arguments; man/tcached.8's OPTIONS are exactly `tcached --help`'s.
- Every environment variable the code reads is in the pages' ENVIRONMENT;
  every function of client/tcache.h is in libtcache(3), whose example
  compiles and runs against a real tcached.
- mandoc -Tlint and man --warnings are silent on every man/*.[1-8].
- The bash and zsh completions offer, for each command, exactly its options
  (asked of bash and of a real interactive zsh on a pseudo-terminal).

The options are read from the help text as printed: lines that begin with
two spaces and a dash.  The man pages are read in their mdoc source.
"""

import os
import re
import shutil
import subprocess
import tempfile

import pytest

from conftest import BUILD, TCACHE, TCACHED, client_env

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MAN = os.path.join(REPO, "man")
COMP = os.path.join(REPO, "contrib", "completions")


def read(*parts):
    with open(os.path.join(REPO, *parts)) as f:
        return f.read()


# ------------------------------------------------------------ the help text

OPT_LINE = re.compile(r"  (-[\w-]+)(?: ([A-Z][A-Z_]*))?"
                      r"(?:, (-[\w-]+)(?: ([A-Z][A-Z_]*))?)?(?:\s|$)")
FLAG = re.compile(r"(?<![\w-])--?[a-z][\w-]*")


def help_options(text):
    """{flag: ARG or None} of the option lines of a help text."""
    opts = {}
    for line in text.splitlines():
        m = OPT_LINE.match(line)
        if m:
            opts[m.group(1)] = m.group(2)
            if m.group(3):
                opts[m.group(3)] = m.group(4)
    return opts


def run(argv, **kw):
    env = client_env("/nonexistent/tcache-docs.sock",
                     extra={"TCACHE_MEMO": "off"})
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=20, env=env, **kw)


def tcache_help(*args):
    r = run([TCACHE] + list(args))
    assert r.returncode == 0, (args, r.stderr)
    return r.stdout


class CmdHelp:
    """One command's help: its usage line, its own options and the common
    ones (after "common options:")."""

    def __init__(self, name, text):
        self.name = name
        self.text = text
        own, sep, common = text.partition("\ncommon options:\n")
        self.usage = own.splitlines()[0]
        self.own = help_options(own)
        self.common = help_options(common) if sep else {}

    def all(self):
        return dict(self.common, **self.own)


def tcache_commands():
    """The commands of `tcache --help`, in order."""
    text = tcache_help("--help")
    block = text.split("\ncommands:\n", 1)[1].split("\n\n", 1)[0]
    names = [line.split()[0] for line in block.splitlines() if line.strip()]
    assert names, text
    return names


def top_options():
    text = tcache_help("--help")
    return help_options(text.split("\noptions:\n", 1)[1])


def cmd_help(name):
    return CmdHelp(name, tcache_help("help", name))


def tcached_help():
    r = run([TCACHED, "--help"])
    assert r.returncode == 0, r.stderr
    return r.stdout


# ------------------------------------------------------------ mdoc sources

MACRO = re.compile(r"^[A-Z][a-z][a-z]?$")
DELIM = {"|", ",", ";", ".", ":", "(", ")", "[", "]", "...", "?", "!"}


def mdoc_flags(line):
    """[(flag, arg or None)] of the Fl macros of one mdoc line; an Ar right
    after a flag is its argument.  `Fl \\&-` (the end of options) is none."""
    toks = line.lstrip(".").split()
    out = []
    i = 0
    while i < len(toks):
        if toks[i] != "Fl":
            i += 1
            continue
        i += 1
        while i < len(toks) and not MACRO.match(toks[i]):
            t = toks[i]
            i += 1
            if t in DELIM or t.startswith("\\&"):
                continue
            out.append(["-" + t, None])
        if out and i + 1 < len(toks) and toks[i] == "Ar":
            out[-1][1] = toks[i + 1]
            i += 2
    return [tuple(x) for x in out]


class Page:
    """An mdoc page cut into sections (.Sh) and subsections (.Ss)."""

    def __init__(self, text, name="page"):
        self.name = name
        self.text = text
        self.sh = {}            # section -> [lines]
        self.ss = {}            # (section, subsection) -> [lines]
        self.ss_order = []
        sh = ss = None
        for line in text.splitlines():
            if line.startswith(".Sh "):
                sh, ss = line[4:].strip(), None
                self.sh[sh] = []
                continue
            if line.startswith(".Ss "):
                ss = line[4:].strip()
                self.ss[(sh, ss)] = []
                self.ss_order.append((sh, ss))
                continue
            if sh is not None:
                self.sh[sh].append(line)
            if ss is not None:
                self.ss[(sh, ss)].append(line)

    @classmethod
    def load(cls, name):
        with open(os.path.join(MAN, name)) as f:
            return cls(f.read(), name)

    def subsections(self, sh):
        return [ss for (s, ss) in self.ss_order if s == sh]

    @staticmethod
    def documented(lines):
        """{flag: arg} of the .It lines: the options a list describes."""
        out = {}
        for line in lines:
            if line.startswith(".It "):
                for flag, arg in mdoc_flags(line):
                    out[flag] = arg
        return out

    @staticmethod
    def mentioned(lines):
        return {f for line in lines if line.startswith(".")
                for f, _ in mdoc_flags(line)}


def same_options(help_opts, man_opts, where):
    """Problems between a help's options and a page's, both {flag: arg}."""
    problems = []
    for f in sorted(set(help_opts) - set(man_opts)):
        problems.append("%s: %s is in the help but not in the man page"
                        % (where, f))
    for f in sorted(set(man_opts) - set(help_opts)):
        problems.append("%s: %s is in the man page but not in the help"
                        % (where, f))
    for f in sorted(set(help_opts) & set(man_opts)):
        h, m = help_opts[f], man_opts[f]
        if (h or "").lower() != (m or "").lower():
            problems.append("%s: %s takes %r in the help, %r in the man page"
                            % (where, f, h, m))
    return problems


def tcache_page_problems(page, commands, helps):
    """Everything that differs between tcache(1) and the help texts."""
    problems = []
    man_cmds = page.subsections("COMMANDS")
    for c in sorted(set(commands) - set(man_cmds)):
        problems.append("command %s is not in the man page" % c)
    for c in sorted(set(man_cmds) - set(commands)):
        problems.append("the man page's command %s is not in tcache --help" % c)
    common = page.documented(page.ss.get(("DESCRIPTION", "Common options"), []))
    for name in commands:
        if name not in man_cmds:
            continue
        h = helps[name]
        lines = page.ss[("COMMANDS", name)]
        problems += same_options(h.own, page.documented(lines), name)
        if h.common:
            problems += same_options(h.common, common, name + " (common)")
        for f in sorted(page.mentioned(lines) - set(h.all())):
            problems.append("%s: the man page names %s, which it does not take"
                            % (name, f))
    return problems


@pytest.fixture(scope="module")
def helps():
    return {c: cmd_help(c) for c in tcache_commands()}


# ------------------------------------------------------------ tcache --help

def test_help_forms_agree(helps):
    """tcache help CMD, tcache CMD --help and tcache CMD -h are one text."""
    for name, h in helps.items():
        assert tcache_help(name, "--help") == h.text, name
        assert tcache_help(name, "-h") == h.text, name
    assert tcache_help("help") == tcache_help("--help") == tcache_help("-h")


def test_help_usage_lines_name_only_options_it_lists(helps):
    for name, h in helps.items():
        used = set(FLAG.findall(h.usage.split(None, 2)[2]
                                if len(h.usage.split()) > 2 else ""))
        assert used <= set(h.all()), (name, used - set(h.all()))
    for line in tcache_help("--help").split("\ncommands:\n")[1] \
            .split("\n\n")[0].splitlines():
        name = line.split()[0]
        assert set(FLAG.findall(line)) <= set(helps[name].all()), line


def cli_parser_options():
    """{name: takes an argument} of client/cli.c's cli_opts table."""
    table = read("client", "cli.c").split("cli_opts[] = {", 1)[1] \
        .split("};", 1)[0]
    opts = dict(re.findall(r'\{\s*"([\w-]+)",\s*(no|required)_argument', table))
    assert len(opts) > 10, table
    return {k: v == "required" for k, v in opts.items()}


def accepts(cmd, flag, has_arg, cwd):
    """Whether tcache CMD's parser knows flag (whatever it then says)."""
    args = [TCACHE, cmd, flag] + (["1"] if has_arg else [])
    r = run(args, cwd=cwd)
    return "unknown option '%s'" % flag not in r.stderr


def test_help_lists_every_option_the_parser_takes(helps, tmp_path):
    """Each command's help against its parser: every option in client/cli.c's
    table that the command accepts is in its help, and every option of its
    help is accepted.  The daemon is absent (TCACHE_AUTOSTART=0), so no
    command changes anything."""
    table = cli_parser_options()
    problems = []
    for name, h in helps.items():
        if name == "help":      # parses no options (tcache.c)
            continue
        listed = h.all()
        for opt, has_arg in table.items():
            flag = "--" + opt
            ok = accepts(name, flag, has_arg, str(tmp_path))
            if ok and flag not in listed:
                problems.append("tcache %s takes %s, its help does not say so"
                                % (name, flag))
            if not ok and flag in listed:
                problems.append("tcache %s --help lists %s, which it refuses"
                                % (name, flag))
        for flag, arg in listed.items():
            if flag.startswith("--") and flag[2:] not in table:
                problems.append("tcache %s --help lists %s, not in cli_opts"
                                % (name, flag))
            elif not flag.startswith("--") and \
                    not accepts(name, flag, arg is not None, str(tmp_path)):
                problems.append("tcache %s refuses %s" % (name, flag))
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------ tcache(1)

def test_tcache_page_matches_help(helps):
    page = Page.load("tcache.1")
    problems = tcache_page_problems(page, list(helps), helps)
    synopsis = page.mentioned(page.sh["SYNOPSIS"])
    for f in sorted(set(top_options()) - synopsis):
        problems.append("tcache %s is not in the SYNOPSIS" % f)
    assert not problems, "\n".join(problems)


def test_a_missing_option_or_command_is_caught(helps):
    """The comparison above fails on a page with an option, a common option
    or a command taken out, or an option the command does not take."""
    text = read("man", "tcache.1")
    assert tcache_page_problems(Page(text), list(helps), helps) == []
    cut = re.sub(r"(?m)^\.It Fl -dry-run\n", "", text)
    assert cut != text
    assert any("--dry-run is in the help but not in the man page" in p
               for p in tcache_page_problems(Page(cut), list(helps), helps))
    cut = re.sub(r"(?m)^\.It Fl -timeout Ar dur\n", "", text)
    assert cut != text
    assert any("--timeout" in p
               for p in tcache_page_problems(Page(cut), list(helps), helps))
    cut = text.replace(".Ss gc\n", ".Ss gcx\n")
    assert {"command gc is not in the man page",
            "the man page's command gcx is not in tcache --help"} <= \
        set(tcache_page_problems(Page(cut), list(helps), helps))
    cut = text.replace(".It Fl -reset\n", ".It Fl -reset\n.Fl -bogus\n")
    assert any("names --bogus" in p
               for p in tcache_page_problems(Page(cut), list(helps), helps))


# ------------------------------------------------------------ tcached

def tcached_parser_options():
    table = read("daemon", "main.c").split("main_options[] = {", 1)[1] \
        .split("};", 1)[0]
    opts = re.findall(r'\{\s*"([\w-]+)",\s*(?:no|required|optional)_argument',
                      table)
    assert len(opts) > 5, table
    return {"--" + o for o in opts}


def test_tcached_help_lists_every_option():
    listed = help_options(tcached_help())
    parsed = tcached_parser_options()
    assert set(listed) == parsed, (
        "in main_options, not in --help: %s; in --help, not in main_options: %s"
        % (sorted(parsed - set(listed)), sorted(set(listed) - parsed)))


def test_tcached_page_matches_help():
    page = Page.load("tcached.8")
    listed = help_options(tcached_help())
    problems = same_options(listed, page.documented(page.sh["OPTIONS"]),
                            "tcached")
    for f in sorted(set(listed) - page.mentioned(page.sh["SYNOPSIS"])):
        problems.append("tcached %s is not in the SYNOPSIS" % f)
    for f in sorted(page.mentioned(page.text.splitlines()) - set(listed)):
        problems.append("tcached(8) names %s, which tcached does not take" % f)
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------ environment

GETENV = re.compile(r'\b(?:getenv|cli_env_flag|paths_env)\(\s*"(\w+)"')


def env_read_by(*files):
    names = set()
    for f in files:
        names |= set(GETENV.findall(read(*f.split("/"))))
    return names


def page_environment(name):
    page = Page.load(name)
    names = set()
    for line in page.sh["ENVIRONMENT"]:
        if line.startswith(".It Ev "):
            names |= {t for t in re.split(r"[\s,]+", line[7:]) if t}
    return names


def test_environment_is_documented():
    client = ["client/" + f for f in sorted(os.listdir(os.path.join(REPO, "client")))
              if f.endswith(".c")]
    lib = ["client/client.c", "client/hash.c", "client/collect.c",
           "client/memo.c", "proto/paths.c"]
    daemon = ["daemon/" + f for f in sorted(os.listdir(os.path.join(REPO, "daemon")))
              if f.endswith(".c")] + ["proto/paths.c"]
    problems = []
    for page, files in (("tcache.1", client + ["proto/paths.c"]),
                        ("libtcache.3", lib), ("tcached.8", daemon)):
        read_env = env_read_by(*files)
        assert "TCACHE_SOCKET" in read_env or page == "libtcache.3" or \
            "HOME" in read_env, (page, read_env)
        for v in sorted(read_env - page_environment(page)):
            problems.append("%s: %s is read by the code but not in ENVIRONMENT"
                            % (page, v))
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------ libtcache(3)

def header_functions():
    text = re.sub(r"/\*.*?\*/", "", read("client", "tcache.h"), flags=re.S)
    names = set(re.findall(r"\b(tc_\w+)\s*\(", text))
    assert "tc_lookup" in names and len(names) > 30, names
    return names


def test_libtcache_page_has_every_function():
    page = Page.load("libtcache.3")
    fns = set()
    for line in page.sh["SYNOPSIS"]:
        m = re.match(r"\.F[no] (tc_\w+)", line)
        if m:
            fns.add(m.group(1))
    names = set()
    for line in page.sh["NAME"]:
        if line.startswith(".Nm "):
            names.add(line.split()[1])
    want = header_functions()
    assert want - fns == set(), "not in the SYNOPSIS: %s" % sorted(want - fns)
    assert fns - want == set(), "not in tcache.h: %s" % sorted(fns - want)
    assert want - names == set(), "not in NAME: %s" % sorted(want - names)


def page_example(name):
    """The C program under EXAMPLES, with mdoc's escapes undone."""
    lines = Page.load(name).sh["EXAMPLES"]
    start = next(i for i, l in enumerate(lines) if l.startswith(".Bd -literal"))
    end = lines.index(".Ed", start)
    body = "\n".join(lines[start + 1:end]) + "\n"
    return body.replace("\\e", "\\").replace("\\&", "")


def example_link_flags():
    """What a program linked with $TCACHE_BUILD's libtcache.a needs besides
    libsodium: the sanitizers of a `make sanitize` build."""
    lib = os.path.join(BUILD, "libtcache.a")
    if not os.path.isfile(lib):
        pytest.skip("%s has no libtcache.a to build the example with" % BUILD)
    with open(lib, "rb") as f:
        data = f.read()
    san = [name for name, sym in (("address", b"__asan_"),
                                  ("undefined", b"__ubsan_")) if sym in data]
    return ["-fsanitize=" + ",".join(san)] if san else []


def test_libtcache_example_builds_and_runs(daemon, tmp_path):
    src = tmp_path / "example.c"
    src.write_text(page_example("libtcache.3"))
    exe = str(tmp_path / "example")
    libs = subprocess.run(["pkg-config", "--libs", "libsodium"],
                          stdout=subprocess.PIPE, universal_newlines=True,
                          check=True).stdout.split()
    r = subprocess.run(["cc", "-std=c11", "-Wall", "-Wextra", "-pedantic",
                        "-Werror", "-I" + os.path.join(REPO, "client"),
                        "-o", exe, str(src), os.path.join(BUILD, "libtcache.a")]
                       + libs + ["-pthread"] + example_link_flags(),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    assert r.returncode == 0, r.stdout
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "parser.c").write_text("int parse;\n")
    env = client_env(daemon.sock, daemon.db, {"CC": "cc"})

    def go():
        p = subprocess.run([exe], cwd=str(tmp_path), env=env, timeout=20,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True)
        assert p.returncode == 0 and p.stderr == "", p
        return p.stdout.strip()

    assert go() == "miss"
    assert go() == "hit"
    (tmp_path / "src" / "parser.c").write_text("int parse2;\n")
    assert go() == "miss"
    env["CC"] = "clang"
    assert go() == "miss"
    assert go() == "hit"


# ------------------------------------------------------------ lint

def man_pages():
    pages = sorted(f for f in os.listdir(MAN) if re.match(r".*\.[1-8]$", f))
    assert {"tcache.1", "tcached.8", "libtcache.3"} <= set(pages), pages
    return pages


def test_mandoc_lint_is_clean():
    if shutil.which("mandoc") is None:
        pytest.skip("mandoc is not installed (Debian package mandoc, in the "
                    "Makefile's DEBS)")
    for p in man_pages():
        r = subprocess.run(["mandoc", "-Tlint", "-W", "warning",
                            os.path.join(MAN, p)], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True)
        assert r.returncode == 0 and r.stdout == "", r.stdout


def test_man_warnings_are_clean():
    if shutil.which("man") is None:
        pytest.skip("man is not installed (Debian package man-db)")
    env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8")
    for p in man_pages():
        r = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l",
                            os.path.join(MAN, p)], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True,
                           env=env)
        assert r.returncode == 0 and r.stderr == "", (p, r.stderr)
        assert "SYNOPSIS" in r.stdout, p


def test_lint_catches_a_broken_page(tmp_path):
    """The two checks above are not silent on everything."""
    bad = read("man", "tcache.1").replace(".Sh SEE ALSO\n",
                                          ".Sh SEE ALSO\n.Xr\n.Bl -tag\n")
    f = tmp_path / "bad.1"
    f.write_text(bad)
    if shutil.which("mandoc") is not None:
        r = subprocess.run(["mandoc", "-Tlint", "-W", "warning", str(f)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True)
        assert r.returncode != 0 and r.stdout != ""
    if shutil.which("man") is not None:
        r = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", str(f)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True)
        assert r.stderr != ""


# ------------------------------------------------------------ completions

BASH_DRIVER = r'''
for f in "$@"; do source "$f" || exit 1; done
complete_line() {  # complete_line FUNCTION WORD...: the words offered
    local fn=$1; shift
    COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
    COMPREPLY=()
    "$fn" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
    printf '%s\n' "${COMPREPLY[@]}" | sort -u | tr '\n' ' '
    echo
}
while IFS= read -r line; do
    eval "complete_line $line"
done
'''


def bash_complete(queries, files=None):
    """{query: set of words} offered by the bash completions for each query,
    a line of shell words: FUNCTION WORD... (the last is being completed)."""
    files = files or [os.path.join(COMP, "tcache.bash"),
                      os.path.join(COMP, "tcached.bash")]
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c", BASH_DRIVER,
                        "bash"] + files, input="\n".join(queries) + "\n",
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=60, cwd=REPO)
    assert r.returncode == 0, r.stderr
    out = r.stdout.split("\n")
    return {q: set(out[i].split()) for i, q in enumerate(queries)}


def test_completion_syntax():
    for f in ("tcache.bash", "tcached.bash"):
        r = subprocess.run(["bash", "-n", os.path.join(COMP, f)],
                           stderr=subprocess.PIPE, universal_newlines=True)
        assert r.returncode == 0, r.stderr
    if shutil.which("zsh") is None:
        pytest.skip("zsh is not installed (Debian package zsh, in the "
                    "Makefile's DEBS): bash checked only")
    r = subprocess.run(["zsh", "-n", os.path.join(COMP, "_tcache")],
                       stderr=subprocess.PIPE, universal_newlines=True)
    assert r.returncode == 0, r.stderr


def test_bash_completes_commands_and_options():
    got = bash_complete(["_tcache tcache inv", "_tcache tcache lookup --t",
                         "_tcache tcache record --outcome ''",
                         "_tcache tcache record --outcome = f",
                         "_tcache tcache run --test x ''",
                         "_tcache tcache run -- sh Make",
                         "_tcache tcache ''",
                         "_tcached tcached --sync ''"])
    assert got["_tcache tcache inv"] == {"invalidate"}
    assert "--test" in got["_tcache tcache lookup --t"]
    assert got["_tcache tcache record --outcome ''"] == \
        {"pass", "fail", "skip", "error"}
    assert got["_tcache tcache record --outcome = f"] == {"fail"}
    assert "sh" in got["_tcache tcache run --test x ''"]       # a command
    assert got["_tcache tcache run -- sh Make"] == {"Makefile"}  # its args
    assert set(tcache_commands()) == got["_tcache tcache ''"]
    assert got["_tcached tcached --sync ''"] == {"normal", "full"}


def completion_problems(offered, helps, daemon_opts, shell):
    """offered: {("tcache", CMD) or ("tcache",) or ("tcached",): words}."""
    problems = []

    def compare(what, want, got):
        for f in sorted(want - got):
            problems.append("%s: %s does not offer %s" % (shell, what, f))
        for f in sorted(got - want):
            problems.append("%s: %s offers %s, which it does not take"
                            % (shell, what, f))

    compare("tcache -", set(top_options()), offered[("tcache",)])
    for name, h in helps.items():
        compare("tcache %s -" % name, set(h.all()), offered[("tcache", name)])
    compare("tcached -", set(daemon_opts), offered[("tcached",)])
    return problems


def bash_offered(helps, files=None):
    queries = {("tcache",): "_tcache tcache -", ("tcached",): "_tcached tcached -"}
    for name in helps:
        queries[("tcache", name)] = "_tcache tcache %s -" % name
    got = bash_complete(list(queries.values()), files)
    return {k: got[q] for k, q in queries.items()}


def test_bash_offers_exactly_each_commands_options(helps):
    problems = completion_problems(bash_offered(helps), helps,
                                   help_options(tcached_help()), "bash")
    assert not problems, "\n".join(problems)


def test_bash_check_catches_a_missing_option(helps, tmp_path):
    """With --dry-run cut from a copy of the completion, the check fails."""
    daemon_opts = help_options(tcached_help())
    before = completion_problems(bash_offered(helps), helps, daemon_opts,
                                 "bash")
    src = read("contrib", "completions", "tcache.bash")
    cut = src.replace(" --dry-run", "")
    assert cut != src
    f = tmp_path / "tcache.bash"
    f.write_text(cut)
    after = completion_problems(
        bash_offered(helps, [str(f), os.path.join(COMP, "tcached.bash")]),
        helps, daemon_opts, "bash")
    assert set(after) - set(before) == \
        {"bash: tcache invalidate - does not offer --dry-run"}


ZSH_DRIVER = r'''
zmodload zsh/zpty || exit 3
out=$1 compdir=$2 tmp=$3; shift 3
: >| $out
zpty z zsh -f -i
zpty -w z "PS1=''; fpath=($compdir \$fpath); autoload -Uz compinit; compinit -u -D -d $tmp/zcompdump"
# Every candidate any completion function adds goes to $out as well.
zpty -w z "compadd() { local -a h; builtin compadd -O h \"\$@\"; print -rl -- \$h >> $out; builtin compadd \"\$@\"; }"
# No list, so no "do you wish to see all N possibilities?" to eat keys.
zpty -w z "unsetopt autolist; LISTMAX=100000; bindkey '^I' complete-word; print -r -- @@ready >> $out"
for i in {1..400}; do grep -qx @@ready $out && break; sleep 0.05; done
n=0
for q in "$@"; do
    zpty -w -n z "$q"$'\t'
    zpty -w -n z $'\025'
    zpty -w z "print -r -- @@$n >> $out"
    n=$((n + 1))
done
for i in {1..600}; do grep -qx "@@$((n - 1))" $out && break; sleep 0.05; done
zpty -d z
'''


def zsh_complete(queries, compdir=COMP):
    """{query: set of words} a real interactive zsh offers on <Tab> after
    each query, with the completion in compdir on its fpath."""
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "out")
        r = subprocess.run(["zsh", "-f", "-c", ZSH_DRIVER, "zsh", out,
                            compdir, d] + queries,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=120, cwd=d)
        assert r.returncode == 0, r.stderr
        with open(out) as f:
            lines = f.read().split("\n")
    got, cur = {}, set()
    for w in lines[lines.index("@@ready") + 1:]:
        if re.match(r"@@\d+$", w):
            got[queries[int(w[2:])]] = cur
            cur = set()
        elif w:
            cur.add(w)
    assert set(got) == set(queries), "zsh answered %d of %d queries" % (
        len(got), len(queries))
    return got


def zsh_offered(helps, compdir=COMP):
    queries = {("tcache",): "tcache -", ("tcached",): "tcached -"}
    for name in helps:
        queries[("tcache", name)] = "tcache %s -" % name
    got = zsh_complete(list(queries.values()), compdir)
    return {k: got[q] for k, q in queries.items()}


@pytest.fixture(scope="module")
def zsh():
    if shutil.which("zsh") is None:
        pytest.skip("zsh is not installed (Debian package zsh, in the "
                    "Makefile's DEBS)")
    r = subprocess.run(["zsh", "-f", "-c", "zmodload zsh/zpty"])
    if r.returncode != 0:
        pytest.skip("this zsh has no zsh/zpty module")


def test_zsh_completes_commands_and_options(zsh):
    got = zsh_complete(["tcache inv", "tcache lookup --t",
                        "tcache record --outcome ", "tcached --sync "])
    assert got["tcache inv"] == {"invalidate"}
    assert "--test" in got["tcache lookup --t"]
    assert {"pass", "fail", "skip", "error"} <= got["tcache record --outcome "]
    assert {"normal", "full"} <= got["tcached --sync "]


def test_zsh_offers_exactly_each_commands_options(zsh, helps):
    problems = completion_problems(zsh_offered(helps), helps,
                                   help_options(tcached_help()), "zsh")
    assert not problems, "\n".join(problems)


def test_zsh_check_catches_a_missing_option(zsh, helps, tmp_path):
    """With --dry-run cut from a copy of the completion, the check fails."""
    src = read("contrib", "completions", "_tcache")
    cut = re.sub(r"(?m)^.*'--dry-run\[.*\n", "", src)
    assert cut != src
    (tmp_path / "_tcache").write_text(cut)
    daemon_opts = help_options(tcached_help())
    before = completion_problems(zsh_offered(helps), helps, daemon_opts, "zsh")
    after = completion_problems(zsh_offered(helps, str(tmp_path)), helps,
                                daemon_opts, "zsh")
    assert set(after) - set(before) == \
        {"zsh: tcache invalidate - does not offer --dry-run"}
