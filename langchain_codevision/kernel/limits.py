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

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise ValueError(f"timeout must be positive, got {self.timeout}")
        if self.max_output_chars < 0 or self.max_code_chars <= 0:
            raise ValueError("max_output_chars must be >= 0 and max_code_chars > 0")

    def rlimits(self) -> dict[str, int]:
        """The OS resource limits to set in the kernel process, by ``RLIMIT_*`` suffix."""
        pairs = {
            "AS": self.memory_bytes,
            "CPU": self.cpu_seconds,
            "FSIZE": self.file_size_bytes,
            "NOFILE": self.open_files,
        }
        return {name: int(value) for name, value in pairs.items() if value is not None}

    def to_dict(self) -> dict[str, object]:
        """A plain-dict copy (for logs and benchmark reports)."""
        return asdict(self)
