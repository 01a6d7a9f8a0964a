"""Thin ctypes wrappers over the Linux calls a jail is built from.

Loaded by path from the jail supervisor and the kernel launcher (never imported from the
package), so it uses the standard library only. Python 3.11 has no ``os.unshare``,
``mount`` or Landlock bindings; these wrappers raise :class:`OSError` with the call named.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
from collections.abc import Iterator

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18

MNT_DETACH = 2
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
PR_SET_NO_NEW_PRIVS = 38
PR_SET_NAME = 15

RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08

# Generic syscall numbers (identical on x86_64 and aarch64 for these newer calls).
_SYS = {"pivot_root": {"x86_64": 155, "aarch64": 41}}
SYS_OPENAT2 = 437
SYS_MOUNT_SETATTR = 442
SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong]
_libc.mount.argtypes += [ctypes.c_char_p]


def _check(result: int, what: str) -> int:
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")
    return result


def _b(text: str | None) -> bytes | None:
    return None if text is None else os.fsencode(text)


def unshare(flags: int) -> None:
    """Move the calling process into new namespaces (``unshare(2)``)."""
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def setns(fd: int, nstype: int) -> None:
    """Join the namespace ``fd`` refers to (``setns(2)``); for a PID namespace, the children's."""
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None):
    """``mount(2)``."""
    _check(_libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)), f"mount {target}")


def umount(target: str, flags: int = 0) -> None:
    """``umount2(2)``."""
    _check(_libc.umount2(_b(target), ctypes.c_int(flags)), f"umount {target}")


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def make_readonly(target: str, recursive: bool = True) -> None:
    """Make the mount at ``target`` (and every mount below it) read-only, nosuid, nodev."""
    attr = _MountAttr(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 0, 0, 0)
    flags = AT_RECURSIVE if recursive else 0
    result = _libc.syscall(
        SYS_MOUNT_SETATTR,
        ctypes.c_int(AT_FDCWD),
        _b(target),
        ctypes.c_uint(flags),
        ctypes.byref(attr),
        ctypes.c_size_t(ctypes.sizeof(attr)),
    )
    _check(result, f"mount_setattr {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    """``pivot_root(2)``."""
    number = _SYS["pivot_root"].get(platform.machine(), 155)
    _check(_libc.syscall(number, _b(new_root), _b(put_old)), "pivot_root")


def sethostname(name: str) -> None:
    """``sethostname(2)`` (in a private UTS namespace)."""
    raw = name.encode()
    _check(_libc.sethostname(raw, ctypes.c_size_t(len(raw))), "sethostname")


def drop_bounding_set() -> None:
    """Drop every capability from the bounding set (no later exec can regain one)."""
    for cap in range(64):
        if _libc.prctl(
            ctypes.c_int(PR_CAPBSET_DROP), ctypes.c_ulong(cap), *(ctypes.c_ulong(0),) * 3
        ):
            if ctypes.get_errno() == 22:  # EINVAL: past the last capability
                break
            _check(-1, f"drop capability {cap}")


SECURE_NO_ROOT = 0xEF
"""``SECBIT_NOROOT``, ``NO_SETUID_FIXUP`` and ``NO_CAP_AMBIENT_RAISE``, each locked, and
``KEEP_CAPS`` locked off: uid 0 gains nothing on exec, and no uid change brings any back."""
_CAP_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def drop_capabilities() -> None:
    """Hold no capability at all, in this user namespace or any later one, for good.

    A process that makes a user namespace gets every capability in it (and a full bounding
    set); a jail's kernel that kept them could make network namespaces of its own, where
    nf_tables and other kernel code meant for administrators answer it. So: the bounding
    set dropped (again), the secure bits locked, ambient, inheritable, permitted and
    effective sets emptied, in that order (the first two need ``CAP_SETPCAP``).
    """
    drop_bounding_set()
    prctl(PR_SET_SECUREBITS, SECURE_NO_ROOT)
    zero = ctypes.c_ulong(0)
    result = _libc.prctl(
        ctypes.c_int(PR_CAP_AMBIENT), ctypes.c_ulong(PR_CAP_AMBIENT_CLEAR_ALL), zero, zero, zero
    )
    _check(result, "clear ambient capabilities")
    header = _CapHeader(_CAP_VERSION_3, 0)
    data = (_CapData * 2)()  # all zero: no capability in any set
    _check(_libc.capset(ctypes.byref(header), data), "capset")


def prctl(option: int, value: int) -> None:
    """``prctl(2)`` with one argument."""
    args = (ctypes.c_ulong(0),) * 3
    _check(_libc.prctl(ctypes.c_int(option), ctypes.c_ulong(value), *args), "prctl")


def set_name(name: str) -> None:
    """Name this process as ``ps``, ``top`` and ``perf`` show it (its ``comm``).

    Best effort: a kernel's processes are named by their role (``cv-template``,
    ``cv-supervisor``, ``cv-init``, ``cv-kernel``), for people watching the host; nothing
    trusts the name (a kernel can rename itself). At most 15 bytes are kept.
    """
    raw = ctypes.create_string_buffer(name.encode()[:15])
    zero = ctypes.c_ulong(0)
    _libc.prctl(ctypes.c_int(PR_SET_NAME), raw, zero, zero, zero)


@contextlib.contextmanager
def file_owner(uid: int | None, gid: int | None) -> Iterator[None]:
    """Create files as ``uid``/``gid`` in this thread (``setfsuid``; the thread's own ids).

    A root host must create files in a jail's tmpfs as the kernel's uid: the tmpfs belongs
    to the jail's user namespace, where host root has no id (``EOVERFLOW``).
    """
    if uid is None or os.geteuid() != 0:
        yield
        return
    _libc.setfsgid(ctypes.c_uint(gid if gid is not None else uid))
    _libc.setfsuid(ctypes.c_uint(uid))
    try:
        yield
    finally:
        _libc.setfsuid(ctypes.c_uint(0))
        _libc.setfsgid(ctypes.c_uint(0))


# openat2 does not add O_LARGEFILE by itself on 64-bit systems the way open() does.
_O_LARGEFILE = {"x86_64": 0o100000, "aarch64": 0o400000}


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def open_beneath(dirfd: int, path: str, flags: int, mode: int = 0o600) -> int:
    """Open ``path`` strictly inside ``dirfd``: no symlinks, no ``..`` out, no mount crossing.

    The host uses this for every file it reads from or writes into a jail, so a hostile
    kernel cannot redirect it with a symlink or a bind mount.
    """
    flags |= os.O_CLOEXEC
    if not flags & os.O_PATH:  # O_PATH takes no other flags
        flags |= _O_LARGEFILE.get(platform.machine(), 0o100000)
    how = _OpenHow(flags, mode if flags & os.O_CREAT else 0, 0)
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV
    result = _libc.syscall(
        SYS_OPENAT2, ctypes.c_int(dirfd), _b(path), ctypes.byref(how), ctypes.c_size_t(24)
    )
    return _check(result, f"open {path!r} in the jail")


# ----------------------------------------------------------------------------- Landlock
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET = 0x1
LANDLOCK_SCOPE_SIGNAL = 0x2

_FS_EXECUTE = 1 << 0
_FS_WRITE_FILE = 1 << 1
_FS_READ_FILE = 1 << 2
_FS_READ_DIR = 1 << 3
_FS_REMOVE_DIR = 1 << 4
_FS_REMOVE_FILE = 1 << 5
_FS_MAKE_CHAR = 1 << 6
_FS_MAKE_DIR = 1 << 7
_FS_MAKE_REG = 1 << 8
_FS_MAKE_SOCK = 1 << 9
_FS_MAKE_FIFO = 1 << 10
_FS_MAKE_BLOCK = 1 << 11
_FS_MAKE_SYM = 1 << 12
_FS_REFER = 1 << 13
_FS_TRUNCATE = 1 << 14
_FS_IOCTL_DEV = 1 << 15
_READ = _FS_EXECUTE | _FS_READ_FILE | _FS_READ_DIR


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_abi() -> int:
    """The Landlock ABI version the running kernel offers (0: none)."""
    result = _libc.syscall(
        SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0),
        ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION),
    )  # fmt: skip
    return max(int(result), 0)


def _fs_rights(abi: int) -> int:
    rights = (1 << 13) - 1  # ABI 1: execute .. make_sym
    if abi >= 2:
        rights |= _FS_REFER
    if abi >= 3:
        rights |= _FS_TRUNCATE
    if abi >= 5:
        rights |= _FS_IOCTL_DEV
    return rights


def landlock_restrict(read_paths: list[str], write_paths: list[str]) -> list[str]:
    """Confine this process (and its children) with Landlock; returns the rules in force.

    Everything may be read and executed below ``read_paths``; files may be written, made
    and removed only below ``write_paths``. With ABI 6 or newer, signals to processes and
    abstract unix sockets outside the sandbox are cut as well.
    """
    abi = landlock_abi()
    if abi < 1:
        raise OSError(95, "Landlock is not offered by this kernel")
    handled = _fs_rights(abi)
    scoped = 0
    if abi >= 6:
        scoped = LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL
    attr = _RulesetAttr(handled, 0, scoped)
    size = ctypes.sizeof(attr) if abi >= 6 else 8
    ruleset = _check(
        _libc.syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size),
                      ctypes.c_uint32(0)),
        "landlock_create_ruleset",
    )  # fmt: skip
    try:
        for paths, access in ((read_paths, _READ), (write_paths, handled)):
            for path in paths:
                try:
                    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                except OSError:
                    continue
                try:
                    rule_access = access if os.path.isdir(path) else access & _file_rights(abi)
                    rule = _PathBeneath(rule_access & handled, fd)
                    _check(
                        _libc.syscall(SYS_LANDLOCK_ADD_RULE, ctypes.c_int(ruleset),
                                      ctypes.c_int(LANDLOCK_RULE_PATH_BENEATH),
                                      ctypes.byref(rule), ctypes.c_uint32(0)),
                        f"landlock_add_rule {path}",
                    )  # fmt: skip
                finally:
                    os.close(fd)
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        _check(
            _libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)),
            "landlock_restrict_self",
        )
    finally:
        os.close(ruleset)
    layers = [f"landlock-fs(abi {abi})"]
    if scoped:
        layers.append("landlock-scope(signals, abstract sockets)")
    return layers


def _file_rights(abi: int) -> int:
    rights = _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE
    if abi >= 3:
        rights |= _FS_TRUNCATE
    if abi >= 5:
        rights |= _FS_IOCTL_DEV
    return rights


# ----------------------------------------------------------------------------- seccomp
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_X32_BIT = 0x40000000
# System calls a model's image code never needs and kernel exploits often start from.
_DENIED_SYSCALLS = {
    "x86_64": {
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "bpf": 321, "perf_event_open": 298, "userfaultfd": 323, "keyctl": 250,
        "add_key": 248, "request_key": 249, "ptrace": 101, "process_vm_readv": 310,
        "process_vm_writev": 311, "kexec_load": 246, "kexec_file_load": 320,
        "open_by_handle_at": 304, "init_module": 175, "finit_module": 313,
        "delete_module": 176, "unshare": 272, "setns": 308, "mount": 165,
        "umount2": 166, "pivot_root": 155, "swapon": 167, "swapoff": 168, "reboot": 169,
        "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
        "fspick": 433, "mount_setattr": 442,
    },
    "aarch64": {
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "bpf": 280, "perf_event_open": 241, "userfaultfd": 282, "keyctl": 219,
        "add_key": 217, "request_key": 218, "ptrace": 117, "process_vm_readv": 270,
        "process_vm_writev": 271, "kexec_load": 104, "kexec_file_load": 294,
        "open_by_handle_at": 265, "init_module": 105, "finit_module": 273,
        "delete_module": 106, "unshare": 97, "setns": 268, "mount": 40, "umount2": 39,
        "pivot_root": 41, "swapon": 224, "swapoff": 225, "reboot": 142,
        "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
        "fspick": 433, "mount_setattr": 442,
    },
}  # fmt: skip
_CLONE = {"x86_64": 56, "aarch64": 220}
_CLONE3 = {"x86_64": 435, "aarch64": 435}
CLONE_NEW_ANY = (
    CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID
    | CLONE_NEWNET
)  # fmt: skip
"""``clone`` flags that make namespaces: refused, as ``unshare`` is."""
ENOSYS = 38


class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def seccomp_deny() -> str:
    """Make the denied system calls fail with ``EPERM`` for this process and its children.

    ``clone`` with any namespace flag fails the same way, and ``clone3`` (whose flags sit in
    memory a filter cannot read) answers ``ENOSYS``, so the C library falls back to
    ``clone``. System calls of another architecture (32-bit, x32) are refused as a whole,
    so they cannot go around the list. Returns the layer's name.
    """
    machine = platform.machine()
    denied = _DENIED_SYSCALLS.get(machine)
    if denied is None:
        raise OSError(95, f"no seccomp table for {machine}")
    numbers = sorted(set(denied.values()))
    program = _deny_program(numbers, _AUDIT_ARCH[machine], _CLONE[machine], _CLONE3[machine])
    filters = (_SockFilter * len(program))(*(_SockFilter(*op) for op in program))
    fprog = _SockFprog(len(program), filters)
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    result = _libc.prctl(
        ctypes.c_int(PR_SET_SECCOMP), ctypes.c_ulong(SECCOMP_MODE_FILTER), ctypes.byref(fprog),
        ctypes.c_ulong(0), ctypes.c_ulong(0),
    )  # fmt: skip
    _check(result, "seccomp")
    return f"seccomp(deny {len(numbers)} syscalls)"


def _deny_program(
    numbers: list[int], arch: int, clone: int, clone3: int
) -> list[tuple[int, int, int, int]]:
    """The filter as (code, jt, jf, k) instructions; jumps are worked out from labels."""
    load_word, jump_eq, jump_ge, jump_set, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    allow, deny = 0x7FFF0000, 0x00050000 | 1  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO|EPERM
    no_such_call = 0x00050000 | ENOSYS
    # (code, label if true, label if false, k); a label is a name or None (the next one)
    body: list[tuple[int, str | None, str | None, int]] = [
        (load_word, None, None, 4),  # seccomp_data.arch
        (jump_eq, None, "deny", arch),  # another architecture: denied outright
        (load_word, None, None, 0),  # seccomp_data.nr
        (jump_ge, "deny", None, _X32_BIT),
        *((jump_eq, "deny", None, number) for number in numbers),
        (jump_eq, "enosys", None, clone3),
        (jump_eq, None, "allow", clone),
        (load_word, None, None, 16),  # the low word of seccomp_data.args[0]: clone's flags
        (jump_set, "deny", "allow", CLONE_NEW_ANY),
    ]
    returns = {"allow": allow, "enosys": no_such_call, "deny": deny}
    at = {name: len(body) + index for index, name in enumerate(returns)}
    program = []
    for pc, (code, if_true, if_false, k) in enumerate(body):
        jt = 0 if if_true is None else at[if_true] - pc - 1
        jf = 0 if if_false is None else at[if_false] - pc - 1
        program.append((code, jt, jf, k))
    program += [(ret, 0, 0, value) for value in returns.values()]
    return program
