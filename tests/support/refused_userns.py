"""Run a command where Linux refuses new user namespaces: a real refusal by the kernel, without
touching the machine's own settings.

    python -m tests.support.refused_userns '{"account": null | "rft-sandbox-test", "argv": [...]}'

Run as root. It makes a user namespace of its own in which `user.max_user_namespaces` is 0 (the
limit is per namespace), then runs `argv` there as root or, with `account`, as that ordinary
account (with its interpreter and checkout reachable, as in tests/support/sandbox_driver.py). Inside,
every attempt to make a user namespace fails with ENOSPC, as on a host with the sysctl at 0.
"""

from __future__ import annotations

import ctypes
import json
import os
import pwd
import sys
from pathlib import Path

from tests.support.sandbox_driver import PR_SET_DUMPABLE, show_install

CLONE_NEWUSER = 0x10000000
NOBODY = 65534


def main() -> None:
    options = json.loads(sys.argv[1])
    entry = pwd.getpwnam(options["account"]) if options.get("account") else None
    if entry:
        show_install(entry.pw_uid, entry.pw_gid)
    entered_read, entered_write = os.pipe()
    mapped_read, mapped_write = os.pipe()
    child = os.fork()
    if child == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(CLONE_NEWUSER) != 0:
            os._exit(99)
        os.write(entered_write, b"x")
        os.read(mapped_read, 1)
        if not options.get("allow"):  # the control: the same namespace, without the refusal
            Path("/proc/sys/user/max_user_namespaces").write_text("0")
        if entry:
            os.setgroups([])
            os.setresgid(entry.pw_gid, entry.pw_gid, entry.pw_gid)
            os.setresuid(entry.pw_uid, entry.pw_uid, entry.pw_uid)
            libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
            os.environ.update(HOME=entry.pw_dir, USER=entry.pw_name)
        os.execvp(options["argv"][0], options["argv"])  # noqa: S606 - the test's own command
    os.read(entered_read, 1)
    for name, own in (("uid_map", entry and entry.pw_uid), ("gid_map", entry and entry.pw_gid)):
        ids = sorted({0, NOBODY, *([own] if own else [])})  # root, the sandbox's uid, the account
        Path(f"/proc/{child}/{name}").write_text("".join(f"{i} {i} 1\n" for i in ids))
    os.write(mapped_write, b"x")
    _, status = os.waitpid(child, 0)
    sys.exit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
