"""The command line: subcommands, the explicit `mount` word, --help.

(`status` and `verify` are tested in test_status.py, `prefetch` in
test_fill.py, `gc` in test_gc.py.)
"""

import subprocess

import pytest

from conftest import HOLLOWFS, Mount, is_mounted

COMMANDS = ["mount", "status", "prefetch", "verify", "gc"]


def run(*args):
    return subprocess.run([str(HOLLOWFS), *args], capture_output=True,
                          text=True, timeout=30, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("command", ["prefetch", "gc"])
def test_command_usage_errors_say_so(hollowfs_bin, tmp_path, command):
    """A bad option of a subcommand is one line and exit status 2."""
    r = run(command, "--no-such-option")
    assert r.returncode == 2, r
    assert r.stdout == ""
    assert r.stderr.startswith("hollowfs")
    assert r.stderr.count("\n") == 1, r.stderr


def test_help_lists_commands_and_options(hollowfs_bin):
    r = run("--help")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.startswith("usage: hollowfs [mount] ")
    for word in COMMANDS:
        assert f"\n    {word}" in out, word
    for opt in ["cache=DIR", "chunk_size=N", "connections=N", "readahead=N",
                "offline", "token_file=PATH", "endpoint=URL",
                "hf_cache=DIR", "debug=CATS", "log=FILE", "uid=N"]:
        assert f"-o {opt}" in out, opt
    assert "FUSE options:" in out
    assert run("mount", "--help").stdout == out


def test_version_with_and_without_mount_word(hollowfs_bin):
    for argv in (["--version"], ["-V"], ["mount", "--version"]):
        r = run(*argv)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("hollowfs "), r.stdout


def test_mount_word_missing_arguments(hollowfs_bin):
    r = run("mount")
    assert r.returncode == 2
    assert r.stderr == ("hollowfs: missing SOURCE and MOUNTPOINT (try "
                        "'hollowfs --help')\n")


def test_option_of_another_scheme_is_a_usage_error(hollowfs_bin, tmp_path):
    (tmp_path / "mnt").mkdir()
    r = run("-f", "-o", f"cache={tmp_path}/cache,hf_cache={tmp_path}/hub",
            f"file://{tmp_path}", str(tmp_path / "mnt"))
    assert r.returncode == 2, r
    assert r.stderr == (f"hollowfs: bad value '{tmp_path}/hub' for option "
                        "hf_cache: only hf:// sources have a "
                        "huggingface_hub cache\n")
    assert not is_mounted(tmp_path / "mnt")


class WordMount(Mount):
    """A Mount started as `hollowfs mount -f ...`."""

    def command(self, source, opts=None, foreground=True):
        argv = super().command(source, opts, foreground)
        return [argv[0], "mount"] + argv[1:]


def test_mount_word_mounts(server, hollowfs_bin, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "a.txt").write_bytes(b"hello, mount\n")
    srv = server(root)
    m = WordMount(tmp_path, "word")
    try:
        m.start(srv.url + "/")
        assert (m.mnt / "a.txt").read_bytes() == b"hello, mount\n"
    finally:
        m.umount()
