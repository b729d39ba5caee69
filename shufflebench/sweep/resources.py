"""The Ray resources a sweep asks for, named once: one per device, and one for the cores of each machine.

* ``shufflebench_device_<name>``: 1 on the one node that reaches the device (its CPU, its GPU, the SSH board it
  drives). The device's actor holds it for its lifetime, so one device never runs two measurements at once, and
  devices on different resources run in parallel.
* ``shufflebench_host``: 1 on every node. A measurement that runs on the node's own cores (``cpu``, ``cpu-torch``,
  ``cuda``, ``arm-emulated``: every profile whose location is ``local`` or ``emulated``) holds all of it; a counting
  task holds a sliver, so counting runs in parallel on the node, but never while one of its own devices measures, and
  two such devices never measure at the same time. Boards over SSH hold none: their timing happens on the board.

`node_resources` writes what a node declares (``ray start --resources``, or the embedded local cluster).
"""

from __future__ import annotations

import json
import re
from typing import Iterable

from ..devices import DeviceProfile
from ..errors import UsageError

HOST_RESOURCE = "shufflebench_host"
DEVICE_PREFIX = "shufflebench_device_"
#: the share of the host a counting task holds: up to 1 / COUNT_SHARE of them at once (CPUs limit them first).
COUNT_SHARE = 0.001


def device_resource(name: str) -> str:
    """The resource of the device profile called ``name`` (characters other than letters, digits and ``_``
    become ``_``)."""
    return DEVICE_PREFIX + re.sub(r"\W", "_", name)


def shares_host(profile: DeviceProfile) -> bool:
    """Whether the device measures on the cores of the node that drives it (not on a board of its own)."""
    return profile.location in ("local", "emulated")


def actor_resources(profile: DeviceProfile) -> dict[str, float]:
    """What the device's actor holds for its lifetime: its device resource, and the whole host when it shares it."""
    held = {device_resource(profile.name): 1.0}
    if shares_host(profile):
        held[HOST_RESOURCE] = 1.0
    return held


def node_resources(devices: Iterable[DeviceProfile]) -> dict[str, float]:
    """The resources a node declares for the devices it reaches (and its host); `UsageError` when two profiles
    would share one resource name."""
    declared = {HOST_RESOURCE: 1.0}
    owners: dict[str, str] = {}
    for profile in devices:
        resource = device_resource(profile.name)
        if owners.get(resource, profile.name) != profile.name:
            raise UsageError(f"devices {owners[resource]!r} and {profile.name!r} would share the Ray resource "
                             f"{resource!r}; rename one profile")
        owners[resource] = profile.name
        declared[resource] = 1.0
    return declared


def resources_json(devices: Iterable[DeviceProfile]) -> str:
    """`node_resources` as the JSON ``ray start --resources`` takes."""
    return json.dumps({name: int(value) for name, value in node_resources(devices).items()})


def check_address(address: str) -> str:
    """``--ray``: ``local``, ``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``; `UsageError` otherwise."""
    if address in ("local", "auto") or re.fullmatch(r"(ray://)?[\w.-]+:\d{1,5}", address):
        return address
    raise UsageError(f"--ray {address!r} is not allowed; allowed: local, auto, HOST:PORT (a running cluster's head)")
