"""Resident memory of the running process, for the stats the server and the worker report."""

from __future__ import annotations


def rss_mb(field: str = "VmRSS") -> float:
    """Resident memory of this process in MB (field "VmHWM" = the peak); 0.0 where /proc is absent."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0
