"""Jail supervisor: builds one kernel's jail, starts the kernel in it, mirrors its exit.

Run by path as the kernel command (``python -E -s _supervisor.py CONNECTION_FILE``) with
its settings as JSON in ``CODEVISION_JAIL``; it imports nothing from the package. It stays
outside the jail, so the host can watch it like any kernel process: its exit status is the
kernel's, and when it dies (closed session, SIGKILLed host) the jail dies with it.

Jail layout, the same for both backends::

    /usr /etc /lib* /bin ... the Python prefixes   host paths, read-only
    /codevision-lib                                this folder (launcher, runtime), read-only
    /proc                                          the jail's own PID namespace
    /dev                                           null, zero, full, random, urandom, tty
    /run/cv                                        size-capped tmpfs, the only writable place:
        kernel.json ipc-*                          the kernel's connection file and sockets
        work/ tmp/ shm/ px/                        workdir, /tmp, /dev/shm, pixel transfer

Backends: ``bwrap`` (bubblewrap) or ``namespaces`` (the same layers built here with
``unshare``/``mount``/``pivot_root``). Either way the kernel runs as an unprivileged uid in
a user namespace (when the host is root it first drops to a per-kernel uid), in private
PID, mount, network, IPC and UTS namespaces, inside the cgroups the host prepared.

The kernel template (``_template.py``) runs :func:`supervise` in each child it forks, with
the jail's init starting the kernel in process instead of ``execve`` of ``kernel_argv``; a
root template forks each child into a PID namespace of its own instead, where it runs
:func:`become_init`: the same jail, with no supervisor process.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import signal
import stat
import subprocess
import sys
from collections.abc import Callable

import _jailsys as sysc

JAIL_DIR = "/run/cv"
JAIL_SUBDIRS = {"work": 0o700, "tmp": 0o1777, "shm": 0o1777, "px": 0o700}
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_LINKS = {
    "fd": "/proc/self/fd",
    "stdin": "/proc/self/fd/0",
    "stdout": "/proc/self/fd/1",
    "stderr": "/proc/self/fd/2",
}
EXIT_SETUP_FAILED = 70


def main() -> None:
    """Read the configuration, build the jail, run the kernel, mirror its exit."""
    config = json.loads(os.environ.pop("CODEVISION_JAIL"))
    sysc.set_name("cv-supervisor")
    _mirror(*supervise(config, sys.argv[1]))


def supervise(
    config: dict,
    connection_file: str,
    *,
    parent_pid: int | None = None,
    launch: Callable[[dict], None] | None = None,
) -> tuple[int, bool]:
    """Build the jail and run the kernel in it; returns its wait status (and "via bwrap").

    ``parent_pid`` is the process that must stay alive (default: the host named in the
    configuration); ``launch`` starts the kernel in the jail's init instead of ``execve``
    of ``kernel_argv`` (a template process that forks kernels passes its own).
    """
    _begin(config)
    try:
        sysc.prctl(sysc.PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != (parent_pid or config["parent_pid"]):
            os._exit(1)  # the host is already gone
        kernel_conn = _kernel_connection(connection_file)
        if config["backend"] == "bwrap":
            _join_cgroups(_enter_cgroups(config.get("cgroups", [])), os.getpid())
            return _run_bwrap(config, kernel_conn)
        return _run_namespaces(config, kernel_conn, launch), True
    except Exception as exc:  # report why, for the host's start error
        _report(config, exc)
        os._exit(EXIT_SETUP_FAILED)


def become_init(
    config: dict, connection_file: str, launch: Callable[[dict], None], parent_pidfd: int
) -> None:
    """Build the jail in this process and be its init: never returns.

    For the kernel template's spares, each forked straight into a PID namespace of its
    own (as its PID 1) by a root template, so a forked kernel needs no supervisor process:
    this process does what :func:`_namespace_child` does, and the two things the
    supervisor did for it as well: it moves itself into every cgroup of the kernel, and
    it publishes ``jail.pid`` (its pid on the host) once the jail's root is in place.
    Its parent, the template, records its exit in ``jail.exit``; ``parent_pidfd`` is a
    pidfd of it, so that a template that died while the jail was built is noticed.
    """
    _begin(config)
    try:
        if os.getpid() != 1 or os.getuid() != 0 or config["backend"] != "namespaces":
            raise RuntimeError("a jail's init in place runs as root, as PID 1 of its namespace")
        host_pid = int(os.readlink("/proc/self"))  # the host's /proc: the pid the host sees
        kernel_conn = _kernel_connection(connection_file)
        host_dir_fd = os.open(config["host_dir"], os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        in_place = (host_dir_fd, host_pid, parent_pidfd)
        _namespace_child(config, kernel_conn, None, launch, in_place)
    except BaseException as exc:
        _report(config, exc)
    os._exit(EXIT_SETUP_FAILED)


def _begin(config: dict) -> None:
    """What comes first in a jail's first process: no core dumps, no SIGINT, ``jail.err``.

    The error file is opened before any namespace or mount change, so a failure anywhere
    can be reported (its descriptor is ``config["err_fd"]``).
    """
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # interrupts reach the kernel by message
    err_path = os.path.join(config["host_dir"], "jail.err")
    config["err_fd"] = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC)


def _kernel_connection(connection_file: str) -> bytes:
    """The kernel's connection file as the jail holds it (its sockets below ``/run/cv``)."""
    with open(connection_file, encoding="utf-8") as handle:
        connection = json.load(handle)
    connection["ip"] = f"{JAIL_DIR}/ipc"
    return json.dumps(connection).encode()


def _report(config: dict, exc: BaseException) -> None:
    with_errno = f" (errno {exc.errno})" if isinstance(exc, OSError) and exc.errno else ""
    os.write(config["err_fd"], f"{type(exc).__name__}: {exc}{with_errno}\n".encode())


def _publish(path: str, text: str) -> None:
    """Write a file the host polls for, whole or not at all."""
    _write(path + ".tmp", text)
    os.rename(path + ".tmp", path)


def publish_at(dir_fd: int, name: str, text: str) -> None:
    """:func:`_publish` into the folder ``dir_fd``, following no link."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW
    fd = os.open(name + ".tmp", flags, 0o600, dir_fd=dir_fd)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.rename(name + ".tmp", name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _join_cgroups(cgroups: list[str], pid: int) -> None:
    """Move process ``pid`` into the kernel's cgroups (its later children are born there).

    A move by pid takes the kernel's global cgroup lock for writing, and the first one in a
    while waits for an RCU grace period (5-11 ms on the development machine), so the
    namespace backend has the jail's init move itself where it can (:func:`_enter_cgroups`)
    and moves it by pid only into the rest, while the init builds its root.
    """
    for path in cgroups:
        _write(os.path.join(path, "cgroup.procs"), str(pid))


def _self_movable(cgroups: list[str]) -> list[str]:
    """The cgroup v1 hierarchies among ``cgroups``: a process may move itself by ``tasks``."""
    return [path for path in cgroups if os.path.exists(os.path.join(path, "tasks"))]


def _enter_cgroups(cgroups: list[str]) -> list[str]:
    """Move this process into the v1 hierarchies of ``cgroups`` itself; return the others.

    Writing "0" to a v1 hierarchy's ``tasks`` file moves the writing thread alone, and that
    move skips the global lock that :func:`_join_cgroups` waits on (about 0.5 ms for three
    hierarchies here, against 7.5 ms by pid). A process with one thread moves whole that
    way; one with more (never the jail's init, a fresh fork) is moved by pid instead.
    """
    if len(os.listdir("/proc/self/task")) != 1:
        return list(cgroups)
    own = _self_movable(cgroups)
    for path in own:
        _write(os.path.join(path, "tasks"), "0")
    return [path for path in cgroups if path not in own]


def _drop_privileges(config: dict) -> None:
    """Root host: become the kernel's own unprivileged uid/gid, with no groups."""
    uid, gid = config.get("uid"), config.get("gid")
    if uid is None or os.getuid() != 0:
        return
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)


def _wait(pid: int) -> int:
    def forward(_signum: int, _frame: object) -> None:
        os.kill(pid, signal.SIGKILL)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGHUP, forward)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            return status
        except InterruptedError:
            continue


def _mirror(status: int, via_init: bool) -> None:
    """Exit the way the kernel did, so the host reports its exit code or signal.

    With ``via_init`` the status is that of the jail's init (bubblewrap's or ours), which
    reports a kernel killed by a signal as exit code 128 + signal.
    """
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
    else:
        code = os.WEXITSTATUS(status)
        if not (via_init and 128 < code < 128 + signal.NSIG):
            os._exit(code)
        number = code - 128  # bubblewrap reports a signalled child as 128 + signal
    signal.signal(number, signal.SIG_DFL)
    os.kill(os.getpid(), number)
    os._exit(128 + number)


# --------------------------------------------------------------------------- bubblewrap
def _run_bwrap(config: dict, kernel_conn: bytes) -> tuple[int, bool]:
    lib_source, lib_target = config["lib"]
    if config.get("uid") is not None and os.getuid() == 0:
        _expose_hidden([*config["ro_paths"], lib_source], config["uid"])
    data_read, data_write = os.pipe()
    os.write(data_write, kernel_conn)
    os.close(data_write)
    info_read, info_write = os.pipe()
    quota = str(int(config["quota_bytes"]))
    inner = str(config.get("inner_id", 65534))
    argv = [config["bwrap"], "--unshare-all", "--unshare-user", "--disable-userns"]
    argv += ["--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    argv += ["--uid", inner, "--gid", inner, "--hostname", "codevision"]
    for path in config["ro_paths"]:
        if os.path.islink(path):
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.exists(path):
            argv += ["--ro-bind", path, path]
    argv += ["--ro-bind", lib_source, lib_target, "--dir", "/dev"]
    for name in DEVICES:
        if os.path.exists(f"/dev/{name}"):
            argv += ["--dev-bind", f"/dev/{name}", f"/dev/{name}"]
    for name, target in DEV_LINKS.items():
        argv += ["--symlink", target, f"/dev/{name}"]
    argv += ["--proc", "/proc"]
    argv += ["--size", quota, "--perms", "0700", "--tmpfs", JAIL_DIR]
    for name, mode in JAIL_SUBDIRS.items():
        argv += ["--perms", f"{mode:04o}", "--dir", f"{JAIL_DIR}/{name}"]
    argv += ["--perms", "0400", "--ro-bind-data", str(data_read), f"{JAIL_DIR}/kernel.json"]
    argv += ["--symlink", f"{JAIL_DIR}/tmp", "/tmp", "--symlink", f"{JAIL_DIR}/shm", "/dev/shm"]
    argv += ["--remount-ro", "/", "--chdir", f"{JAIL_DIR}/work", "--info-fd", str(info_write)]
    argv += ["--", *config["kernel_argv"]]

    def prepare_child() -> None:
        _drop_privileges(config)
        sysc.prctl(sysc.PR_SET_PDEATHSIG, signal.SIGKILL)

    child = subprocess.Popen(
        argv,
        env=config["kernel_env"],
        pass_fds=(data_read, info_write),
        preexec_fn=prepare_child,
        stdin=subprocess.DEVNULL,
    )
    os.close(data_read)
    os.close(info_write)
    info = b""
    while chunk := os.read(info_read, 4096):
        info += chunk
    os.close(info_read)
    if info:
        jail_pid = json.loads(info)["child-pid"]
        _publish(os.path.join(config["host_dir"], "jail.pid"), str(jail_pid))
    return _wait(child.pid), True


def _expose_hidden(paths: list[str], uid: int) -> None:
    """Make read-only paths below directories ``uid`` cannot enter reachable for bwrap.

    In a private mount namespace of this supervisor only: each blocking directory (e.g. a
    ``/root`` of mode 0700 holding the Python prefix) is covered by a tmpfs in which just
    the needed paths are bound back.
    """
    blocked: dict[str, list[str]] = {}
    for path in paths:
        parts = path.strip("/").split("/")
        for depth in range(1, len(parts)):
            ancestor = "/" + "/".join(parts[:depth])
            info = os.stat(ancestor)
            if info.st_uid != uid and not info.st_mode & stat.S_IXOTH:
                blocked.setdefault(ancestor, []).append(path)
                break
    if not blocked:
        return
    sysc.unshare(sysc.CLONE_NEWNS)
    sysc.mount(None, "/", None, sysc.MS_REC | sysc.MS_PRIVATE)
    for ancestor, inner_paths in blocked.items():
        fds = {path: os.open(path, os.O_PATH | os.O_CLOEXEC) for path in inner_paths}
        sysc.mount("tmpfs", ancestor, "tmpfs", sysc.MS_NOSUID | sysc.MS_NODEV, "mode=0755")
        for path, fd in fds.items():
            _bind(f"/proc/self/fd/{fd}", path, directory=stat.S_ISDIR(os.fstat(fd).st_mode))
            os.close(fd)


def _bind(source: str, target: str, *, directory: bool, readonly: bool = True) -> None:
    if directory:
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.exists(target):
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
    sysc.mount(source, target, None, sysc.MS_BIND | sysc.MS_REC)
    if readonly:
        sysc.make_readonly(target)


# --------------------------------------------------------------------------- namespaces
def _run_namespaces(config: dict, kernel_conn: bytes, launch: Callable[[dict], None] | None) -> int:
    root_host = os.getuid() == 0
    flags = sysc.CLONE_NEWPID
    if not root_host:
        outer_uid, outer_gid = os.getuid(), os.getgid()
        sysc.unshare(flags | sysc.CLONE_NEWUSER)
        _map_ids(0, outer_uid, outer_gid)
    else:
        sysc.unshare(flags)
    alive_read, alive_write = os.pipe()
    ready_read, ready_write = os.pipe()
    joined_read, joined_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(alive_write)
        os.close(ready_read)
        os.close(joined_write)
        try:
            _namespace_child(config, kernel_conn, (alive_read, ready_write, joined_read), launch)
        except BaseException as exc:
            _report(config, exc)
        os._exit(EXIT_SETUP_FAILED)
    os.close(alive_read)
    os.close(ready_write)
    os.close(joined_read)
    cgroups = config.get("cgroups", [])
    own = _self_movable(cgroups)  # the init enters these itself (see _enter_cgroups)
    try:  # while the jail's init builds its root; it forks nothing before it is told
        _join_cgroups([path for path in cgroups if path not in own], pid)
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    os.write(joined_write, b"1")
    os.close(joined_write)
    if os.read(ready_read, 1) == b"1":
        _publish(os.path.join(config["host_dir"], "jail.pid"), str(pid))
    os.close(ready_read)
    status = _wait(pid)
    os.close(alive_write)
    return status


def _map_ids(inner: int, outer_uid: int, outer_gid: int) -> None:
    """Map ``inner`` in the new user namespace onto the caller's own uid and gid."""
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{inner} {outer_uid} 1")
    _write("/proc/self/gid_map", f"{inner} {outer_gid} 1")


def _namespace_child(
    config: dict,
    kernel_conn: bytes,
    fds: tuple[int, int, int] | None,
    launch: Callable[[dict], None] | None,
    in_place: tuple[int, int, int] | None = None,
) -> None:
    """PID 1 of the new PID namespace: build the filesystem, drop everything, start the kernel.

    ``fds`` are pipes from the supervisor: ``alive`` (closed when it dies), ``ready`` (this
    process says the jail is built) and ``joined`` (it says it has moved this process into
    the kernel's cgroups this process cannot enter itself: v2's, meanwhile; the v1
    hierarchies it enters first thing). Without a supervisor (:func:`become_init`),
    ``in_place`` is the host folder's descriptor, this process's host pid and a pidfd of
    its parent (readable once the parent is gone) instead: it enters every cgroup itself
    and publishes ``jail.pid`` there. The kernel, forked as PID 2 once every layer of this
    process is in force, is ``execve`` of ``kernel_argv``, or ``launch(config)`` in that
    process; this one becomes its init.
    """
    sysc.set_name("cv-init")
    cgroups = config.get("cgroups", [])
    if in_place is not None:
        _join_cgroups(_enter_cgroups(cgroups), 0)  # v2 too: "0" moves the writing process
    elif _enter_cgroups(_self_movable(cgroups)):  # v1: by itself
        raise RuntimeError("the jail's init has more than one thread")  # never: a fresh fork
    namespaces = sysc.CLONE_NEWNS | sysc.CLONE_NEWNET | sysc.CLONE_NEWIPC | sysc.CLONE_NEWUTS
    sysc.unshare(namespaces)
    sysc.mount(None, "/", None, sysc.MS_REC | sysc.MS_PRIVATE)
    owner = (config["uid"], config["gid"]) if os.getuid() == 0 and config.get("uid") else (0, 0)
    # Sources are opened before the new root covers /tmp, so any host path can be shown.
    sources = {}
    lib_source, lib_target = config["lib"]
    for path in [*config["ro_paths"], lib_source, *(f"/dev/{name}" for name in DEVICES)]:
        if os.path.islink(path) and not path.startswith("/dev/"):
            sources[path] = os.readlink(path)
        elif os.path.exists(path):
            sources[path] = os.open(path, os.O_PATH | os.O_CLOEXEC)
    new_root = "/tmp"
    sysc.mount("tmpfs", new_root, "tmpfs", sysc.MS_NOSUID | sysc.MS_NODEV, "size=8m,mode=0755")
    for path in config["ro_paths"]:
        source = sources.get(path)
        if isinstance(source, str):
            os.makedirs(os.path.dirname(new_root + path), exist_ok=True)
            os.symlink(source, new_root + path)
        elif source is not None:
            directory = stat.S_ISDIR(os.fstat(source).st_mode)
            _bind(f"/proc/self/fd/{source}", new_root + path, directory=directory)
    _bind(f"/proc/self/fd/{sources[lib_source]}", new_root + lib_target, directory=True)
    _make_dev(new_root, sources)
    for source in sources.values():
        if isinstance(source, int):
            os.close(source)
    os.makedirs(new_root + "/proc")
    sysc.mount("proc", new_root + "/proc", "proc", sysc.MS_NOSUID | sysc.MS_NODEV | sysc.MS_NOEXEC)
    _make_jail_dir(new_root + JAIL_DIR, config, owner, kernel_conn)
    os.symlink(f"{JAIL_DIR}/tmp", new_root + "/tmp")
    os.symlink(f"{JAIL_DIR}/shm", new_root + "/dev/shm")
    os.chdir(new_root)
    sysc.pivot_root(".", ".")
    sysc.umount(".", sysc.MNT_DETACH)
    os.chdir("/")
    sysc.make_readonly("/", recursive=False)
    sysc.make_readonly("/dev", recursive=False)
    sysc.sethostname("codevision")
    if in_place is not None:  # the root is in place: the host may open the jail's area
        host_dir_fd, host_pid, _ = in_place
        publish_at(host_dir_fd, "jail.pid", str(host_pid))
        os.close(host_dir_fd)
    elif os.read(fds[2], 1) != b"1":
        os._exit(1)  # the supervisor could not move this process into the cgroups
    else:
        os.close(fds[2])
    sysc.unshare(sysc.CLONE_NEWCGROUP)  # after the move: its cgroup path shows as "/"
    sysc.drop_bounding_set()
    _drop_privileges(config)
    sysc.prctl(sysc.PR_SET_DUMPABLE, 1)  # a uid change hides /proc/self from its owner
    uid, gid = os.getuid(), os.getgid()
    sysc.unshare(sysc.CLONE_NEWUSER | sysc.CLONE_NEWNS)  # inherited mounts become locked
    inner = int(config.get("inner_id", 65534))
    _map_ids(inner, uid, gid)
    with contextlib.suppress(OSError):
        _write("/proc/sys/user/max_user_namespaces", "0")
    sysc.drop_capabilities()  # the new user namespace gave it every one back
    os.setsid()
    sysc.prctl(sysc.PR_SET_NO_NEW_PRIVS, 1)
    sysc.prctl(sysc.PR_SET_PDEATHSIG, signal.SIGKILL)
    alive_fd = fds[0] if fds is not None else in_place[2]  # type: ignore[index]
    if select.select([alive_fd], [], [], 0)[0]:
        os._exit(1)  # the supervisor (or template) died while the jail was being built
    os.close(alive_fd)
    os.chdir(f"{JAIL_DIR}/work")
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    if fds is not None:
        os.write(fds[1], b"1")
        os.close(fds[1])
    kernel = os.fork()
    if kernel == 0:
        sysc.prctl(sysc.PR_SET_PDEATHSIG, signal.SIGKILL)
        if launch is not None:
            launch(config)
            os._exit(0)
        argv = config["kernel_argv"]
        os.execve(argv[0], argv, config["kernel_env"])
    _init(kernel)


def _init(kernel: int) -> None:
    """PID 1 of the jail: reap every orphan, and exit as the kernel (PID 2) did.

    The kernel is not PID 1 itself, so the signals meant for it (``SIGXCPU`` at its CPU
    limit, ``SIGINT`` for an interrupt) arrive as they do outside a PID namespace, and
    orphans it leaves behind are reaped instead of filling ``pids.max``. The init holds no
    descriptor but stdio and installs no signal handler: from inside the jail nothing can
    signal it (signals to a PID namespace's init without a handler are dropped).
    """
    os.closerange(3, 1 << 20)
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except InterruptedError:
            continue
        if pid == kernel:
            if os.WIFSIGNALED(status):
                os._exit(128 + os.WTERMSIG(status))
            os._exit(os.WEXITSTATUS(status))


def _make_dev(new_root: str, sources: dict[str, int | str]) -> None:
    dev = new_root + "/dev"
    os.makedirs(dev)
    sysc.mount("tmpfs", dev, "tmpfs", sysc.MS_NOSUID | sysc.MS_NOEXEC, "size=64k,mode=0755")
    for name in DEVICES:
        source = sources.get(f"/dev/{name}")
        if isinstance(source, int):
            _bind(f"/proc/self/fd/{source}", f"{dev}/{name}", directory=False, readonly=False)
    for name, target in DEV_LINKS.items():
        os.symlink(target, f"{dev}/{name}")


def _make_jail_dir(path: str, config: dict, owner: tuple[int, int], kernel_conn: bytes) -> None:
    os.makedirs(path)
    options = f"size={int(config['quota_bytes'])},mode=0700,uid={owner[0]},gid={owner[1]}"
    sysc.mount("tmpfs", path, "tmpfs", sysc.MS_NOSUID | sysc.MS_NODEV, options)
    for name, mode in JAIL_SUBDIRS.items():
        os.mkdir(f"{path}/{name}")
        os.chmod(f"{path}/{name}", mode)
        os.chown(f"{path}/{name}", *owner)
    conn = f"{path}/kernel.json"
    fd = os.open(conn, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o400)
    os.write(fd, kernel_conn)
    os.close(fd)
    os.chown(conn, *owner)


if __name__ == "__main__":
    main()
