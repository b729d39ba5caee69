"""Shared fixtures: tiny ONNX models, a throwaway sshd on 127.0.0.1, the emulated aarch64 rootfs."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest


def export_onnx(net, input_shape, path: Path) -> Path:
    """Export `net` (eval mode) to `path` with the TorchScript exporter, input named "x"."""
    import torch

    net = net.eval()
    # The TorchScript exporter is deprecated but is the one asked for here (dynamo=False): silence only that notice.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export", category=DeprecationWarning)
        torch.onnx.export(
            net, torch.zeros(input_shape), str(path), dynamo=False, input_names=["x"], output_names=["y"],
            opset_version=17,
        )
    return path


def _tiny_net():
    import torch.nn as nn

    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1))


# Convolutions at the sizes ShuffleNet V2 1.0x runs them: the stem (3 -> 24, 3x3 stride 2 on 224x224) and a branch
# pointwise conv of stage 2 (116 -> 116, 1x1 on 28x28). Small enough for qemu-user, real enough to pick real kernels.
def _zoo_convs():
    import torch.nn as nn

    return {
        "stem": (nn.Sequential(nn.Conv2d(3, 24, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(24), nn.ReLU()),
                 (1, 3, 224, 224)),
        "pointwise": (nn.Sequential(nn.Conv2d(116, 116, 1, bias=False), nn.BatchNorm2d(116), nn.ReLU()),
                      (1, 116, 28, 28)),
    }


@pytest.fixture(scope="session")
def onnx_models(tmp_path_factory) -> dict:
    """{"tiny", "stem", "pointwise"} -> path of an exported .onnx model (weights seeded)."""
    import torch

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("onnx")
    models = {"tiny": export_onnx(_tiny_net(), (1, 3, 16, 16), folder / "tiny.onnx")}
    for name, (net, shape) in _zoo_convs().items():
        for module in net.modules():  # non-trivial batch-norm statistics, so folding them is actually exercised
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
        models[name] = export_onnx(net, shape, folder / f"{name}.onnx")
    return models


@pytest.fixture(scope="session")
def tiny_onnx(onnx_models) -> Path:
    return onnx_models["tiny"]


@pytest.fixture(scope="session")
def python_without_onnxruntime(tmp_path_factory) -> str:
    """A Python ("board") that cannot import onnxruntime: a venv without site packages and without pip."""
    folder = tmp_path_factory.mktemp("bare-venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = str(folder / "bin" / "python")
    probe = subprocess.run([python, "-c", "import onnxruntime"], capture_output=True)
    if probe.returncode == 0:
        pytest.skip("cannot make a Python without onnxruntime: the base interpreter has it")
    return python


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 with no listener: connecting is refused."""
    return free_port()


@pytest.fixture(scope="module")
def sshd(tmp_path_factory, request) -> SimpleNamespace:
    """An sshd on 127.0.0.1 and a free high port, with throwaway host and client keys, for the current user.

    Yields host, port and the ssh_options that trust exactly that host key and use exactly that client key
    (``-F /dev/null`` keeps the user's ~/.ssh/config out). The daemon is stopped by its PID at the end.
    """
    sshd_bin = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)
    if sshd_bin is None or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        pytest.skip("sshd/ssh not installed (apt-get install openssh-server openssh-client)")
    folder = tmp_path_factory.mktemp("sshd")
    for key in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(folder / key)], check=True)
    shutil.copy(folder / "client_key.pub", folder / "authorized_keys")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation directory sshd insists on
    user = getpass.getuser()
    port = free_port()
    config = folder / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {folder / 'host_key'}",
                f"PidFile {folder / 'sshd.pid'}",
                f"AuthorizedKeysFile {folder / 'authorized_keys'}",
                f"AllowUsers {user}",
                "PermitRootLogin prohibit-password",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "StrictModes no",  # the keys live under the world-writable /tmp
                "PermitTTY no",
                "X11Forwarding no",
                "AllowTcpForwarding no",
                "",
            ]
        )
    )
    log = open(folder / "sshd.log", "wb")
    proc = subprocess.Popen([sshd_bin, "-D", "-e", "-f", str(config)], stdout=log, stderr=log)

    def stop():
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()

    request.addfinalizer(stop)
    deadline = time.monotonic() + 10
    while True:
        if proc.poll() is not None:
            pytest.fail(f"sshd exited with {proc.returncode}: {(folder / 'sshd.log').read_text()[-500:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"sshd did not listen on 127.0.0.1:{port} within 10 s")
            time.sleep(0.05)
    known_hosts = folder / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {(folder / 'host_key.pub').read_text().strip()}\n")
    options = (
        "-F", "/dev/null",
        "-i", str(folder / "client_key"),
        "-o", "IdentitiesOnly=yes",
        "-o", f"UserKnownHostsFile={known_hosts}",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "LogLevel=ERROR",
    )
    return SimpleNamespace(host=f"{user}@127.0.0.1", port=port, options=options, pid=proc.pid)


@pytest.fixture(scope="session")
def arm_rootfs() -> Path:
    """The emulated aarch64 rootfs, or skip (it is built by scripts/setup-arm-emulation.sh)."""
    from shufflebench.runners.targets import default_rootfs

    rootfs = default_rootfs()
    site = list(rootfs.glob("usr/local/lib/python3.*/dist-packages/onnxruntime"))
    if not site:
        pytest.skip(f"no aarch64 rootfs with onnxruntime at {rootfs}; run scripts/setup-arm-emulation.sh")
    if shutil.which("qemu-aarch64-static") is None:
        pytest.skip("qemu-aarch64-static not installed; run scripts/setup-arm-emulation.sh")
    if os.geteuid() != 0:
        probe = subprocess.run(["unshare", "--mount", "--map-root-user", "true"], capture_output=True)
        if probe.returncode != 0:
            pytest.skip("unshare --mount is not allowed for this user (needs root or unprivileged user namespaces)")
    return rootfs
