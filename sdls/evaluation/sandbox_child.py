"""The sandboxed child: limits itself, installs an audit hook, then runs one untrusted program.

sandbox.py passes this file's source with `python -I -S -B -c`, so it runs on the bare standard library
and never imports sdls. argv: program path, nonce, cpu seconds, memory bytes, output bytes, root, audit.
The program passed iff the child prints the nonce as its last stdout line and exits 0: an early
`sys.exit(0)` or `os._exit(0)` inside the program cannot fake a pass.
"""

import os
import resource
import sys
import traceback

# Events refused outright: network, new processes, native code, undoing the limits.
REFUSED_PREFIXES = (
    "socket.",
    "subprocess.",
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.fork",
    "os.forkpty",
    "os.kill",
    "os.killpg",
    "pty.",
    "ctypes.",
    "resource.setrlimit",
    "resource.prlimit",
    "http.client.",
    "urllib.",
    "ftplib.",
    "smtplib.",
    "poplib.",
    "imaplib.",
    "nntplib.",
    "telnetlib.",
    "webbrowser.",
    "os.startfile",
    "_winapi.",
    "winreg.",
)
# Events whose first argument is a path that must lie inside the root.
PATH_EVENTS = (
    "os.remove",
    "os.rmdir",
    "os.mkdir",
    "os.chmod",
    "os.chown",
    "os.truncate",
    "os.utime",
    "os.chflags",
    "os.lchflags",
    "os.setxattr",
    "os.removexattr",
    "shutil.rmtree",
    "shutil.chown",
    "sqlite3.connect",
    "os.mkfifo",
    "os.mknod",
)
# Events with (source, destination): both must lie inside (a rename out of the root deletes there).
TWO_PATH_EVENTS = (
    "os.rename",
    "os.link",
    "os.symlink",
    "shutil.copyfile",
    "shutil.copymode",
    "shutil.copystat",
    "shutil.copytree",
    "shutil.move",
)
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def make_guard(root):
    busy = []

    def inside(path):
        if isinstance(path, int):
            return True  # an already-open descriptor was checked when it was opened
        if path is None:
            return True
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        full = os.path.realpath(os.path.join(os.getcwd(), os.fspath(path)))
        return full == root or full.startswith(root + os.sep)

    def verdict(event, args):
        if event.startswith(REFUSED_PREFIXES):
            return "refused"
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None, None))[:3]
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & WRITE_FLAGS
            )
            return None if not writes or inside(path) else f"write to {path!r}"
        if event in PATH_EVENTS:
            return None if inside(args[0]) else f"path {args[0]!r}"
        if event in TWO_PATH_EVENTS:
            bad = [p for p in args[:2] if not inside(p)]
            return f"path {bad[0]!r}" if bad else None
        return None

    def guard(event, args):
        if busy:
            return  # events raised by the guard's own checks
        busy.append(1)
        try:
            why = verdict(event, args)
        finally:
            busy.pop()
        if why:
            os.write(2, f"\nSANDBOX-BLOCKED {event}: {why}\n".encode("utf-8", "replace"))
            raise PermissionError(f"sandbox: {event} refused ({why})")

    return guard


def main():
    program_path, nonce, cpu_seconds, memory_bytes, output_bytes, root, audit = sys.argv[1:8]
    cpu, memory, output = int(cpu_seconds), int(memory_bytes), int(output_bytes)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, (output, output))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    sys.dont_write_bytecode = True
    with open(program_path, encoding="utf-8") as f:
        source = f.read()
    if audit == "1":
        sys.addaudithook(make_guard(os.path.realpath(root)))
    namespace = {"__name__": "__main__", "__file__": program_path}
    try:
        exec(compile(source, program_path, "exec"), namespace)
    except BaseException as exc:
        namespace.clear()  # free what the program held (after a MemoryError) before formatting
        os.write(2, f"\nSANDBOX-EXCEPTION {type(exc).__name__}\n".encode())
        try:
            traceback.print_exception(exc, limit=4)
            sys.stderr.flush()
        except BaseException:
            pass
        os._exit(1)
    sys.stdout.flush()
    os.write(1, f"\n{nonce}\n".encode())
    os._exit(0)


if __name__ == "__main__":
    main()
