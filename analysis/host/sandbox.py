"""Confining the model host's process with the Linux kernel's own mechanisms, before it loads
anything uploaded.

- **Landlock** (unprivileged filesystem and network sandboxing, Linux 5.13+): the process may
  write, create, rename and delete only beneath its own temporary directory (and write to
  ``/dev/null``); from ABI 4 (Linux 6.7) it may neither connect nor bind a TCP socket; from
  ABI 6 (Linux 6.12) it may not signal processes outside its sandbox nor reach abstract Unix
  sockets. A sandboxed process cannot ptrace anything outside its sandbox.
- **seccomp** (through libseccomp): ``socket()`` fails for every address family (no UDP, no
  Unix sockets such as PostgreSQL's), and ``ptrace`` and ``process_vm_*`` fail.
- **Capabilities** are dropped (a worker running as root gives its host none of root's powers
  beyond file ownership), and ``no_new_privs`` keeps them from coming back through exec.
- **Resource limits**: address space (the memory limit, enforced by the kernel on the CPU)
  and no core dumps.

Reading files is not restricted: a model can read what the worker's user can read (the
environment it gets is empty of secrets). :func:`confine` raises :class:`SandboxUnavailable`
when the kernel lacks what is asked for, so that a host never runs less confined than
configured.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import resource
from pathlib import Path

__all__ = ["SandboxUnavailable", "confine", "die_with_parent", "landlock_abi"]

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

# The same syscall numbers on x86-64 and arm64.
SYS_CAPSET = {"x86_64": 126, "aarch64": 91}
SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1

# Filesystem rights (ABI 1 unless noted).
FS_EXECUTE = 1 << 0
FS_WRITE_FILE = 1 << 1
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3
FS_REMOVE_DIR = 1 << 4
FS_REMOVE_FILE = 1 << 5
FS_MAKE_CHAR = 1 << 6
FS_MAKE_DIR = 1 << 7
FS_MAKE_REG = 1 << 8
FS_MAKE_SOCK = 1 << 9
FS_MAKE_FIFO = 1 << 10
FS_MAKE_BLOCK = 1 << 11
FS_MAKE_SYM = 1 << 12
FS_REFER = 1 << 13  # ABI 2
FS_TRUNCATE = 1 << 14  # ABI 3
NET_BIND_TCP = 1 << 0  # ABI 4
NET_CONNECT_TCP = 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1  # ABI 6

WRITES = (
    FS_WRITE_FILE
    | FS_REMOVE_DIR
    | FS_REMOVE_FILE
    | FS_MAKE_CHAR
    | FS_MAKE_DIR
    | FS_MAKE_REG
    | FS_MAKE_SOCK
    | FS_MAKE_FIFO
    | FS_MAKE_BLOCK
    | FS_MAKE_SYM
)
"""Every right that changes the filesystem (ABI 1); later ABIs add REFER and TRUNCATE."""

WRITABLE_DEVICES = ("/dev/null",)

SECCOMP_DENIED = ("socket", "ptrace", "process_vm_readv", "process_vm_writev")
SCMP_ACT_ALLOW = 0x7FFF0000


class SandboxUnavailable(RuntimeError):
    """The kernel (or the machine) lacks a mechanism the host was configured to use."""


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _check(result: int, what: str) -> int:
    if result < 0:
        code = ctypes.get_errno()
        raise SandboxUnavailable(f"{what} failed: {os.strerror(code)}")
    return result


def landlock_abi() -> int:
    """The Landlock ABI version this kernel offers, 0 when it has none."""
    version = _libc.syscall(
        SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), LANDLOCK_CREATE_RULESET_VERSION
    )
    return max(0, int(version))


def die_with_parent(parent_pid: int) -> None:
    """Be killed (SIGKILL) when the process that started this one dies, so that a worker
    killed mid-run never leaves its model host behind."""
    _check(_libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(1)


def _limit(kind: int, value: int) -> None:
    resource.setrlimit(kind, (value, value))


def _drop_capabilities() -> None:
    """Give up every capability (bounding, ambient, effective, permitted, inheritable)."""
    _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    for cap in range(64):
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 and ctypes.get_errno() == errno.EINVAL:
            break  # past the last capability this kernel knows
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()  # two {effective, permitted, inheritable} words, all empty
    number = SYS_CAPSET.get(os.uname().machine)
    if number is None:
        raise SandboxUnavailable(f"no capset syscall number for {os.uname().machine}")
    _check(_libc.syscall(number, header, data), "capset")


def _landlock(writable: Path, abi: int) -> list[str]:
    fs = WRITES | (FS_REFER if abi >= 2 else 0) | (FS_TRUNCATE if abi >= 3 else 0)
    net = NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0
    attr = _RulesetAttr(fs, net, scoped)
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    ruleset = _check(
        _libc.syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0),
        "landlock_create_ruleset",
    )
    try:
        rules = [(str(writable), fs)]
        rules += [(device, FS_WRITE_FILE) for device in WRITABLE_DEVICES]
        for path, allowed in rules:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                rule = _PathBeneathAttr(allowed, fd)
                _check(
                    _libc.syscall(
                        SYS_LANDLOCK_ADD_RULE,
                        ruleset,
                        LANDLOCK_RULE_PATH_BENEATH,
                        ctypes.byref(rule),
                        0,
                    ),
                    f"landlock_add_rule({path})",
                )
            finally:
                os.close(fd)
        _check(_libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0), "landlock_restrict_self")
    finally:
        os.close(ruleset)
    applied = ["filesystem writes only in its own directory"]
    if net:
        applied.append("no TCP connect or bind")
    if scoped:
        applied.append("no signals or abstract sockets outside the sandbox")
    return applied


def _seccomp() -> list[str]:
    name = ctypes.util.find_library("seccomp")
    if name is None:
        raise SandboxUnavailable("libseccomp is not installed")
    lib = ctypes.CDLL(name, use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
    context = ctypes.c_void_p(lib.seccomp_init(ctypes.c_uint32(SCMP_ACT_ALLOW)))
    if not context.value:
        raise SandboxUnavailable("seccomp_init failed")
    try:
        deny = ctypes.c_uint32(0x00050000 | errno.EACCES)  # SCMP_ACT_ERRNO(EACCES)
        for call in SECCOMP_DENIED:
            number = lib.seccomp_syscall_resolve_name(call.encode())
            if lib.seccomp_rule_add(context, deny, ctypes.c_int(number), ctypes.c_uint(0)) < 0:
                raise SandboxUnavailable(f"seccomp_rule_add({call}) failed")
        if lib.seccomp_load(context) < 0:
            raise SandboxUnavailable("seccomp_load failed")
    finally:
        lib.seccomp_release(context)
    return ["no sockets of any kind", "no ptrace"]


def confine(writable: Path, memory_bytes: int | None) -> list[str]:
    """Confine this process for good: writes only beneath ``writable``, no network, no
    capabilities, at most ``memory_bytes`` of address space (None: no such limit, as CUDA
    needs). Returns what was applied, in words."""
    applied = []
    if memory_bytes is not None:
        _limit(resource.RLIMIT_AS, memory_bytes)
        applied.append(f"address space at most {memory_bytes} bytes")
    _limit(resource.RLIMIT_CORE, 0)
    if os.geteuid() == 0 or _has_capabilities():
        _drop_capabilities()
        applied.append("no capabilities")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    abi = landlock_abi()
    if abi < 1:
        raise SandboxUnavailable("this kernel has no Landlock (Linux 5.13 or later, enabled)")
    applied += _landlock(writable, abi)
    applied += _seccomp()
    return applied


def _has_capabilities() -> bool:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16) != 0
    return False
