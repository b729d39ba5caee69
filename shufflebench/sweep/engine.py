"""Run a sweep plan on Ray: counting as parallel CPU tasks, measuring in one actor per device, into the store.

Ray does the distributed part: it places work where the resources are (`resources`), restarts an actor whose process
died, and runs tasks in parallel. This module is the driver:

* **Counting** is one Ray task per architecture (1 CPU and a sliver of the node's host resource each).
* **Predicting** (predict mode) is one such task per architecture and device, submitted once the architecture is
  counted: a prediction needs the device's calibration (sent once per device), not the device.
* **Measuring** runs in one actor per device, created with that device's resource (and the whole host resource when
  the device measures on the node's own cores), so a device measures one architecture at a time and devices on
  different resources measure in parallel. The driver keeps one call in flight per actor. An architecture is
  measured once it is counted, and a device that shares the host starts once counting is over (its actor would hold
  the host the counting tasks need); when a device has nothing left its actor is ended, which frees the host for the
  next device that shares it. An actor whose process died is replaced by a new one, which Ray places where the
  device's resource is.
* **Faults.** A failure (a process killed, a node lost, an SSH board that drops, any error but a `UsageError`) is
  retried up to ``retries`` times; then the architecture is recorded as failed with each attempt's reason. A device
  that fails ``give_up_after`` architectures in a row is given up for this run (the rest stays missing).
* **Interruption.** Every result is written to the store the moment it arrives. On Ctrl-C the driver cancels what
  is in flight and returns; the next run with the same arguments does only what is missing.

``ray`` is imported here only, and only when a plan has work to do: the rest of shufflebench never needs it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from ..cost import CostSummary
from ..errors import SetupError, UsageError
from ..measure.sampling import SamplingPolicy
from ..profile import profile_model
from .plan import COUNT_STAGE, Mode, Stage, SweepPlan, SweepSummary
from .resources import COUNT_SHARE, HOST_RESOURCE, actor_resources, device_resource, node_resources, shares_host
from .space import Architecture
from .store import Store
from .work import DeviceRun, Measure, count_architecture, measure_architecture, predict_architecture

RAY_HINT = "sweeps run on Ray: pip install 'shufflebench[scale]' (or pip install ray)"
TICK_S = 0.5  # how often the driver wakes without a result, to refresh progress and notice Ctrl-C
REASON_CHARS = 300

#: on_update(stages, now): called after every result and every tick.
OnUpdate = Callable[[list[Stage], float], None]


def import_ray() -> Any:
    """The ``ray`` module; `SetupError` saying how to install it when it is missing."""
    try:
        import ray
    except ImportError:
        raise SetupError(RAY_HINT) from None
    return ray


class DeviceWorker:
    """The measuring side of one device: Ray runs one per device as an actor and calls `measure` one at a time."""

    def __init__(self, device: Any, policy: SamplingPolicy, measure: Measure) -> None:
        self.device, self.policy, self.measure_fn = device, policy, measure

    def measure(self, arch: Architecture, cost: CostSummary) -> DeviceRun:
        return measure_architecture(arch, cost, self.device, self.policy, self.measure_fn)


@dataclass
class _Job:
    stage: str
    arch: Architecture
    attempt: int = 1
    reasons: list[str] = field(default_factory=list)


def run_sweep(plan: SweepPlan, store: Store, policy: SamplingPolicy, *, address: str = "local", retries: int = 2,
              measure: Measure = profile_model, give_up_after: int = 3, on_update: OnUpdate | None = None,
              clock: Callable[[], float] = time.time) -> SweepSummary:
    """Carry out ``plan`` on a Ray cluster and record every result in ``store`` as it arrives.

    address: ``local`` starts Ray in this process (or uses the one already started here), with this machine's CPUs
    and the resources of the plan's devices; ``auto`` or ``host:port`` joins a running cluster, whose nodes must
    declare the resources (`resources.node_resources`). policy: sampling per architecture and device (``budget_s``
    seconds each). retries: attempts after the first, per architecture and stage.
    """
    if retries < 0:
        raise UsageError(f"--retries {retries} is not allowed; it must be 0 or more")
    started = clock()
    stages = _stages(plan)
    failures: dict[str, str] = {}
    if plan.empty:
        return SweepSummary(plan.mode, str(store.path), len(plan.architectures), tuple(stages.values()), False, 0.0,
                            "none (nothing to do)")
    ray = import_ray()
    # Ray prints its own notices (a worker that died...) to stdout: keep stdout for the result (--format json).
    with contextlib.redirect_stdout(sys.stderr), _connected(ray, address, plan) as cluster:
        driver = _Driver(ray, plan, store, policy, retries, measure, give_up_after, stages, failures, clock)
        interrupted = False
        try:
            driver.run(on_update)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            driver.stop()
    return SweepSummary(plan.mode, str(store.path), len(plan.architectures), tuple(stages.values()), interrupted,
                        clock() - started, cluster, failures)


def _stages(plan: SweepPlan) -> dict[str, Stage]:
    stages = {COUNT_STAGE: Stage(COUNT_STAGE, len(plan.to_count), plan.done_before[COUNT_STAGE])}
    for profile in plan.devices:
        stages[profile.name] = Stage(profile.name, len(plan.per_device[profile.name]), plan.done_before[profile.name],
                                     emulated=profile.emulated and plan.mode is Mode.MEASURE)
    return stages


class _connected:
    """Connect to Ray for the plan (see `run_sweep`'s ``address``), check the cluster offers every resource the plan
    asks for, and disconnect at the end (a Ray this process had started before is left as it was)."""

    def __init__(self, ray: Any, address: str, plan: SweepPlan) -> None:
        self.ray, self.address, self.plan, self.connected = ray, address, plan, False

    def __enter__(self) -> str:
        ray, plan = self.ray, self.plan
        if self.address == "local" and not ray.is_initialized():
            # The embedded cluster's address is the loopback one, so it needs no network (Ray's servers still
            # listen on every interface; the token authentication Ray turns on for a local cluster guards them).
            # Worker output stays out of the progress bar; a worker's error reaches the driver with its result.
            ray.init(address="local", num_cpus=os.cpu_count() or 1, resources=node_resources(plan.devices),
                     include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                     _node_ip_address="127.0.0.1", object_store_memory=200 * 2**20)
            self.connected = True
        elif self.address != "local" and not ray.is_initialized():
            try:
                ray.init(address=self.address, log_to_driver=False, logging_level=logging.ERROR)
                self.connected = True
            except Exception as exc:  # unreachable, refused, a token missing or wrong: all one line for the user
                raise SetupError(f"--ray {self.address}: cannot join the Ray cluster: {_one_line(exc)}") from None
        try:
            self._check(ray.cluster_resources())
        except BaseException:
            self.__exit__()
            raise
        return "local (embedded)" if self.address == "local" else self.address

    def _check(self, offered: dict[str, float]) -> None:
        predicting = self.plan.mode is Mode.PREDICT and any(self.plan.per_device.values())
        if (self.plan.to_count or predicting) and offered.get(HOST_RESOURCE, 0) <= 0:
            work = "counting and predicting need" if predicting else "counting needs"
            raise SetupError(f"no node of the Ray cluster declares {HOST_RESOURCE!r}, which {work}; start "
                             "each node with the resources `shufflebench sweep resources` prints")
        for profile in self.plan.devices:
            resource = device_resource(profile.name)
            if not self.plan.per_device[profile.name] or self.plan.mode is Mode.PREDICT:
                continue  # a prediction runs anywhere: it needs the device's calibration, not the device
            if offered.get(resource, 0) <= 0:
                raise SetupError(f"no node of the Ray cluster declares {resource!r} for device {profile.name!r}; "
                                 f"start the node that reaches it with --resources "
                                 f"'$(shufflebench sweep resources {profile.name})'")
            if offered[resource] != 1:
                raise SetupError(f"the Ray cluster declares {resource!r} {offered[resource]:g} times; a device is "
                                 "reached by one node, declared once")
            if HOST_RESOURCE in actor_resources(profile) and offered.get(HOST_RESOURCE, 0) <= 0:
                raise SetupError(f"device {profile.name!r} measures on its node's cores, and no node declares "
                                 f"{HOST_RESOURCE!r}")

    def __exit__(self, *exc: Any) -> None:
        if self.connected:  # stops an embedded cluster; leaves a joined one running
            self.ray.shutdown()


class _Driver:
    """The event loop of one run: submit, wait for results, record them, retry, give up, stop."""

    def __init__(self, ray: Any, plan: SweepPlan, store: Store, policy: SamplingPolicy, retries: int,
                 measure: Measure, give_up_after: int, stages: dict[str, Stage], failures: dict[str, str],
                 clock: Callable[[], float]) -> None:
        self.ray, self.plan, self.store, self.retries = ray, plan, store, retries
        self.give_up_after, self.stages, self.failures, self.clock = give_up_after, stages, failures, clock
        self.costs = store.counts([arch.key for arch in plan.architectures])
        self.uncountable: set[str] = set()
        self.pending: dict[Any, _Job] = {}
        self.queues = {name: deque(archs) for name, archs in plan.per_device.items()}
        self.busy: dict[str, bool] = {name: False for name in self.queues}
        self.in_a_row: dict[str, int] = {name: 0 for name in self.queues}
        self.count_task = ray.remote(count_architecture).options(
            num_cpus=1, resources={HOST_RESOURCE: COUNT_SHARE}, max_retries=0)
        self.worker_class = ray.remote(DeviceWorker)
        self.predict_task = ray.remote(predict_architecture).options(
            num_cpus=1, resources={HOST_RESOURCE: COUNT_SHARE}, max_retries=0)
        self.calibrations = {name: ray.put(calibration) for name, calibration in plan.calibrations.items()}
        self.policy, self.measure = policy, measure
        self.profiles = {profile.name: profile for profile in plan.devices}
        self.actors: dict[str, Any] = {}
        for name, queue in self.queues.items():
            if not queue:
                self.stages[name].finished_at = clock()

    def run(self, on_update: OnUpdate | None) -> None:
        if self.plan.to_count:
            self.stages[COUNT_STAGE].started_at = self.clock()
        for arch in self.plan.to_count:
            self._submit(_Job(COUNT_STAGE, arch))
        self._feed_devices()
        while self.pending:
            ready, _ = self.ray.wait(list(self.pending), num_returns=1, timeout=TICK_S)
            for ref in ready:
                self._finish(self.pending.pop(ref), ref)
            self._feed_devices()
            if on_update is not None:
                on_update(list(self.stages.values()), self.clock())

    def _submit(self, job: _Job) -> None:
        if job.stage == COUNT_STAGE:
            ref = self.count_task.remote(job.arch)
        elif self.plan.mode is Mode.PREDICT:
            ref = self.predict_task.remote(job.arch, self.costs[job.arch.key], self.calibrations[job.stage])
            stage = self.stages[job.stage]
            stage.started_at = stage.started_at or self.clock()
        else:
            ref = self.actors[job.stage].measure.remote(job.arch, self.costs[job.arch.key])
            self.busy[job.stage] = True
        self.pending[ref] = job

    def _feed_devices(self) -> None:
        """Give every idle device its next counted architecture; end the actors of devices with nothing left. In
        predict mode every counted architecture is submitted at once (predictions are tasks, not a device's)."""
        counting = any(job.stage == COUNT_STAGE for job in self.pending.values())
        for name, queue in self.queues.items():
            if self.plan.mode is Mode.PREDICT:
                for arch in [arch for arch in queue if arch.key in self.costs]:
                    queue.remove(arch)
                    self._submit(_Job(name, arch))
                continue
            if self.busy[name]:
                continue
            while queue and queue[0].key in self.uncountable:
                queue.popleft()  # never counted, never measured: it stays missing
            ready = next((arch for arch in queue if arch.key in self.costs), None)
            if ready is None:
                if not queue:
                    self._end_actor(name)
                continue
            if name not in self.actors:
                if counting and shares_host(self.profiles[name]):
                    continue  # its actor would hold the host that the counting tasks it waits for need
                self._start_actor(name)
            queue.remove(ready)
            self._submit(_Job(name, ready))

    def _start_actor(self, name: str) -> None:
        profile = self.profiles[name]
        self.actors[name] = self.worker_class.options(
            num_cpus=0, resources=actor_resources(profile), max_restarts=0, max_task_retries=0,
        ).remote(profile, self.policy, self.measure)

    def _end_actor(self, name: str) -> None:
        actor = self.actors.pop(name, None)
        if actor is not None:
            self.ray.kill(actor, no_restart=True)  # frees the device, and the host for the next device sharing it

    def _finish(self, job: _Job, ref: Any) -> None:
        stage = self.stages[job.stage]
        if job.stage != COUNT_STAGE:
            self.busy[job.stage] = False
        try:
            value = self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:
            reason, retry = _failure(self.ray, exc)
            job.reasons.append(f"attempt {job.attempt}: {reason}")
            if isinstance(exc, self.ray.exceptions.RayActorError) and job.stage in self.actors:
                # A fresh actor, placed by Ray where the device's resource is; calls wait for it to start.
                self._end_actor(job.stage)
                self._start_actor(job.stage)
            if retry and job.attempt <= self.retries:
                stage.retried += 1
                self._submit(_Job(job.stage, job.arch, job.attempt + 1, job.reasons))
                return
            self._record_failure(job, stage)
            return
        stage.finished_at = self.clock()
        stage.done += 1
        if job.stage == COUNT_STAGE:
            self.store.put_counts(job.arch.key, value, attempts=job.attempt)
            self.costs[job.arch.key] = value
            return
        if self.plan.mode is Mode.PREDICT:
            self.store.put_prediction(job.arch.key, job.stage, value.predicted_ms, value.predictor)
        else:
            stage.started_at = min(stage.started_at or value.started_at, value.started_at)
            self.store.put_measurement(job.arch.key, value, attempts=job.attempt)
        self.in_a_row[job.stage] = 0

    def _record_failure(self, job: _Job, stage: Stage) -> None:
        error = "; ".join(job.reasons)
        stage.failed += 1
        stage.finished_at = self.clock()
        if job.stage == COUNT_STAGE:
            self.store.put_count_failure(job.arch.key, error, job.attempt)
            self.uncountable.add(job.arch.key)
            self.failures[f"{job.arch.key} (counting)"] = error
            return
        if self.plan.mode is Mode.MEASURE:  # a failed prediction is said in the summary; a rerun tries it again
            self.store.put_measurement_failure(job.arch.key, job.stage, error, job.attempt)
        self.failures[f"{job.arch.key} on {job.stage}"] = error
        stage.started_at = stage.started_at or self.stages[COUNT_STAGE].started_at or self.clock()
        self.in_a_row[job.stage] += 1
        if self.in_a_row[job.stage] >= self.give_up_after:
            stage.stopped = (f"given up after {self.in_a_row[job.stage]} architectures failed in a row; last: "
                             f"{job.reasons[-1]}")
            self.queues[job.stage].clear()
            self._end_actor(job.stage)

    def stop(self) -> None:
        """Cancel what is in flight and end every actor (results already recorded stay in the store)."""
        for ref, job in list(self.pending.items()):
            if job.stage == COUNT_STAGE or self.plan.mode is Mode.PREDICT:
                try:
                    self.ray.cancel(ref, force=True)
                except Exception:  # already finished or already gone: nothing left to cancel
                    pass
        self.pending.clear()
        for name in list(self.actors):
            self._end_actor(name)


def _failure(ray: Any, exc: Exception) -> tuple[str, bool]:
    """One line saying why an attempt failed, and whether another attempt may succeed (everything but a
    `UsageError`: a bad architecture stays bad)."""
    if isinstance(exc, ray.exceptions.RayTaskError):
        cause = exc.cause
        return _one_line(f"{type(cause).__name__}: {cause}"), not isinstance(cause, UsageError)
    if isinstance(exc, ray.exceptions.RayActorError):
        return "the measuring process died (" + _one_line(exc, 200) + ")", True
    if isinstance(exc, ray.exceptions.WorkerCrashedError):
        return "the counting or predicting process died (" + _one_line(exc, 200) + ")", True
    return _one_line(f"{type(exc).__name__}: {exc}"), True


def _one_line(exc: Any, limit: int = REASON_CHARS) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
