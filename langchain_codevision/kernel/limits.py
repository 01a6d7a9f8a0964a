"""Resource limits for a kernel running untrusted, model-written code."""

from __future__ import annotations

from dataclasses import asdict, dataclass

GiB = 1024**3
MiB = 1024**2


@dataclass(frozen=True)
class KernelLimits:
    """Limits applied to one kernel and to each execution in it.

    Attributes:
        timeout: Wall-clock seconds one ``execute`` may take before it is interrupted.
        interrupt_grace: Seconds to wait after an interrupt before restarting the kernel.
        memory_bytes: Address-space limit of the kernel process (``RLIMIT_AS``).
        cpu_seconds: CPU seconds over the kernel's lifetime (``RLIMIT_CPU``).
        file_size_bytes: Largest file the kernel may write (``RLIMIT_FSIZE``).
        open_files: Most open file descriptors (``RLIMIT_NOFILE``).
        max_output_chars: Characters of stdout/stderr/result text kept per execution.
        max_code_chars: Longest code accepted by ``execute``.
        max_images: Most images returned by one execution.
        startup_timeout: Seconds a new kernel may take to become ready.
        max_processes: Most processes (and threads) in the jail at once: the cgroup's
            ``pids.max`` and, with a per-kernel uid, ``RLIMIT_NPROC``.
        disk_bytes: Size of the jail's one writable tmpfs (workdir, ``/tmp``, ``/dev/shm``
            and pixel transfer together); it vanishes with the kernel.
        max_result_pixels: Largest image (width x height) the host accepts from the
            kernel; bigger results are refused in the kernel before they cost the host.
        cpu_cores: CPU bandwidth of the whole jail, in cores (a cgroup quota; ``None``: no
            quota), so background processes cannot take the host's other cores.
    """

    timeout: float = 30.0
    interrupt_grace: float = 2.0
    memory_bytes: int | None = 4 * GiB
    cpu_seconds: int | None = 3600
    file_size_bytes: int | None = 512 * MiB
    open_files: int | None = 1024
    max_output_chars: int = 20_000
    max_code_chars: int = 100_000
    max_images: int = 16
    startup_timeout: float = 60.0
    max_processes: int | None = 64
    disk_bytes: int = 512 * MiB
    max_result_pixels: int = 40_000_000
    cpu_cores: float | None = 1.0

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise ValueError(f"timeout must be positive, got {self.timeout}")
        if self.max_output_chars < 0 or self.max_code_chars <= 0:
            raise ValueError("max_output_chars must be >= 0 and max_code_chars > 0")
        if self.disk_bytes < 16 * MiB:
            raise ValueError(f"disk_bytes must be at least 16 MiB, got {self.disk_bytes}")
        if self.max_processes is not None and self.max_processes < 8:
            raise ValueError(f"max_processes must be at least 8, got {self.max_processes}")
        if self.max_result_pixels <= 0:
            raise ValueError("max_result_pixels must be positive")

    def rlimits(self, *, per_kernel_uid: bool = False) -> dict[str, int]:
        """The OS resource limits to set in the kernel process, by ``RLIMIT_*`` suffix.

        ``NPROC`` counts every process of a uid, so it is set only when the kernel has a
        uid of its own (``per_kernel_uid``).
        """
        pairs = {
            "AS": self.memory_bytes,
            "CPU": self.cpu_seconds,
            "FSIZE": self.file_size_bytes,
            "NOFILE": self.open_files,
            "CORE": 0,
            "NPROC": self.max_processes if per_kernel_uid else None,
        }
        return {name: int(value) for name, value in pairs.items() if value is not None}

    @property
    def jail_memory_bytes(self) -> int | None:
        """The jail's cgroup memory limit: the kernel's memory plus its tmpfs."""
        if self.memory_bytes is None:
            return None
        return self.memory_bytes + self.disk_bytes

    def to_dict(self) -> dict[str, object]:
        """A plain-dict copy (for logs and benchmark reports)."""
        return asdict(self)
