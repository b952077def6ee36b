"""Inside a pod's network namespace (started by `ip netns exec`, which also gave it a private mount
namespace): bind the pod's volumes at their mount paths, make the root filesystem read-only when
the container asks for it, then exec the container's command as its uid/gid with no capabilities.

    python -m infra.rehearsal.podinit SPEC.json

SPEC: {"mounts": [[host_dir, path, read_only], ...], "read_only_root": bool, "uid": int, "gid": int,
"groups": [int], "cwd": str, "env": {...}, "argv": [...]}.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import sys

CLONE_NEWUTS = 0x04000000


MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
LIBC = ctypes.CDLL(None, use_errno=True)


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    def b(x: str | None) -> bytes | None:
        return None if x is None else x.encode()
    if LIBC.mount(b(source), b(target), b(fstype), ctypes.c_ulong(flags), b(data)) != 0:
        print(f"podinit: mount {source} on {target}: {os.strerror(ctypes.get_errno())}", file=sys.stderr)
        sys.exit(125)


def main(argv: list[str]) -> None:
    spec = json.loads(open(argv[0]).read())
    # ip netns exec made / a slave mount: nothing below propagates back to the host.
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    # A pod has its own hostname (its name, which its /etc/hosts maps to its address): Ray finds
    # its node address through it.
    name = spec.get("hostname", "").encode()
    if name and (LIBC.unshare(CLONE_NEWUTS) != 0 or LIBC.sethostname(name, len(name)) != 0):
        print(f"podinit: hostname: {os.strerror(ctypes.get_errno())}", file=sys.stderr)
        sys.exit(125)
    # Sources are opened before anything is mounted: a volume folder may live under a path that a
    # mount (a pod's /tmp, say) covers next.
    mounts = sorted(spec["mounts"], key=lambda m: m[1].count("/"))
    fds = [os.open(source, os.O_PATH) for source, _, _ in mounts]
    # What a container runtime gives every container: its own /dev/shm (64 MiB unless a volume is
    # mounted there) and a high open-files hard limit (containerd: 1048576, for KubeRay's `ulimit -n 65536`).
    mount("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "size=64m,mode=1777")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), 1048576))
    except (ValueError, OSError):  # this machine caps the hard limit lower: keep it
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
    for fd, (_, target, read_only) in zip(fds, mounts):
        mount(f"/proc/self/fd/{fd}", target, None, MS_BIND | MS_REC)
        if read_only:
            mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY)
        os.close(fd)
    if spec.get("read_only_root"):
        mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY)
    try:
        os.chdir(spec["cwd"])
    except OSError as exc:
        print(f"podinit: workingDir {spec['cwd']}: {exc}", file=sys.stderr)
        sys.exit(125)
    groups = ",".join(str(g) for g in spec.get("groups") or [spec["gid"]])
    command = ["setpriv", f"--reuid={spec['uid']}", f"--regid={spec['gid']}", f"--groups={groups}",
               "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--", *spec["argv"]]
    if spec["uid"] == 0:
        command = list(spec["argv"])
    try:
        os.execvpe(command[0], command, spec["env"])
    except OSError as exc:  # the kubelet's StartError: exec of the entrypoint failed
        print(f"podinit: exec {spec['argv'][0]}: {exc}", file=sys.stderr)
        sys.exit(127)


if __name__ == "__main__":
    main(sys.argv[1:])
