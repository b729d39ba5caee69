"""Run `board_runner` on a target (`targets`): start its Python, write the bundle (`bundle`), read one JSON answer.

Process handling lives here: the wall-clock limit of the whole exchange, stopping a target that overruns (SIGTERM
first so the bootstrap cleans up, then SIGKILL), and turning what came back (an answer, an error object, a crash, an
unreachable host) into the result or into one-line `SetupError` / `MeasurementError` messages.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path
from typing import Optional, Sequence

from ..errors import MeasurementError, SetupError, UsageError
from ..measure import board_runner, sampling
from .bundle import BOOTSTRAP, MODEL_FILE, make_bundle, model_file
from .targets import Target


def _stderr_tail(stderr: bytes, lines: int = 2, limit: int = 300) -> str:
    """The last lines of stderr as one line, without the harmless "Error in cpuinfo" noise of emulated onnxruntime."""
    kept = [
        line.strip()
        for line in stderr.decode("utf-8", "replace").splitlines()
        if line.strip() and not line.startswith("Error in cpuinfo")
    ]
    text = " | ".join(kept[-lines:]) or "no error output"
    return text if len(text) <= limit else "..." + text[-(limit - 3):]


def _clip(text: str, limit: int = 300) -> str:
    """One line, at most `limit` characters, keeping the head (where error messages say what went wrong)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _last_json(stdout: bytes) -> Optional[dict]:
    for line in reversed(stdout.decode("utf-8", "replace").splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


def _status_text(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"status {returncode}"


def _stop(proc: subprocess.Popen, grace_s: float = 5.0) -> None:
    """SIGTERM first, so the bootstrap removes its temporary directory (it turns the signal into a clean exit);
    SIGKILL after `grace_s` seconds. For ssh, ending the client closes the channel; the remote side then stops on
    its own deadline."""
    proc.terminate()
    try:
        proc.communicate(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def run_remote(target: Target, model_path: Path | Sequence[Path], request: dict,
               timeout_s: Optional[float] = None) -> dict:
    """Measure `model_path` on `target` with `request` (board_runner's schema; its "model" key is set here): one
    path with one request, or a list of paths with ``{"interleaved": [one request per path], "policy": {...}}``
    (and ``"count": {...}`` for a counted run, see `board_runner.count_many`).

    timeout_s: wall-clock limit in seconds for the whole exchange (start, transfer, load, sampling); None gives
    60 s plus three times the policy's budget_s per model, and 120 s more on an emulated target. Returns board_runner's result
    dict (samples in seconds) plus ``target``: {kind, label, emulated}.

    Raises `UsageError` (bad request or model path), `SetupError` (target unreachable or without onnxruntime, rootfs
    missing), `MeasurementError` (model refused, remote crash, timeout).
    """
    paths = [Path(p) for p in model_path] if isinstance(model_path, (list, tuple)) else [Path(str(model_path))]
    for path in paths:
        if not path.is_file():
            raise UsageError(f"model {path} is not a file; give the path of an .onnx model")
    try:
        if "interleaved" in request:
            policy_fields = request.get("policy", {})
            checked = {"interleaved": [board_runner.validate_request(dict(r, model=model_file(i), policy=policy_fields))
                                       for i, r in enumerate(request["interleaved"])], "policy": policy_fields}
            if "count" in request:
                checked["count"] = board_runner.validate_count(request["count"])
            request = checked
        else:
            request = board_runner.validate_request(dict(request, model=MODEL_FILE))
    except ValueError as exc:
        raise UsageError(f"measurement request: {exc}") from None
    policy = sampling.SamplingPolicy.from_dict(request["policy"])
    if timeout_s is None:
        timeout_s = 60.0 + 3.0 * policy.budget_s * len(paths) + (120.0 if target.emulated else 0.0)
    if not timeout_s > 0:
        raise UsageError(f"timeout_s={timeout_s!r} is not allowed; allowed: seconds > 0")
    target.check()

    # The remote side gives up a little after the host does, so a board never keeps running an abandoned job.
    bundle = make_bundle(paths, request, deadline_s=timeout_s + 2)
    argv = target.argv(["-c", BOOTSTRAP])
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=target.env()
        )
    except OSError as exc:
        raise SetupError(f"{target.label}: cannot start {argv[0]}: {exc.strerror or exc}") from None
    try:
        stdout, stderr = proc.communicate(bundle, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _stop(proc)
        raise MeasurementError(
            f"{target.label}: no result within timeout_s={timeout_s:g} s; raise the timeout or lower the sampling "
            f"budget (budget_s={policy.budget_s:g})"
        ) from None
    except BaseException:  # Ctrl-C: leave no process behind
        _stop(proc)
        raise
    done = subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)

    answer = _last_json(done.stdout)
    if answer is None:
        tail = _stderr_tail(done.stderr)
        if target.connect_error_status is not None and done.returncode == target.connect_error_status:
            raise SetupError(f"cannot reach {target.label} over ssh: {tail}")
        if done.returncode == 127:
            raise SetupError(f"{target.label}: python not found on the target: {tail}")
        raise MeasurementError(f"{target.label}: remote python failed with {_status_text(done.returncode)}: {tail}")
    error = answer.get("error")
    if error is not None:
        # Name the user's model, not the remote temporary copy onnxruntime reported.
        message = re.sub(
            r"\S*shufflebench-[^/\s]+/(model(?:_(\d+))?\.onnx)",
            lambda m: str(paths[int(m.group(2) or 0)]) if int(m.group(2) or 0) < len(paths) else m.group(0),
            str(error["message"]),
        )
        kind, message = error.get("kind"), _clip(message)
        if kind == "missing_onnxruntime":
            raise SetupError(f"{target.label} has no usable onnxruntime ({message}); {target.setup_hint}")
        if kind == "missing_provider":
            raise SetupError(f"{target.label}: {message}")
        raise MeasurementError(f"{target.label}: {kind}: {message}")
    if done.returncode != 0:
        raise MeasurementError(
            f"{target.label}: remote python ended with {_status_text(done.returncode)} after answering: "
            f"{_stderr_tail(done.stderr)}"
        )
    answer["target"] = {
        "kind": type(target).__name__,
        "label": target.label,
        "emulated": bool(target.emulated),
    }
    return answer
