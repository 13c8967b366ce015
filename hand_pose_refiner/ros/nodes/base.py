"""What every hand_pose_refiner node shares: lifecycle, parameters from the config schema,
diagnostics, a latest-frame worker, and the ``main`` that runs a node on its own.

Parameters are the config schema's keys (``spatial_filter.max_hands`` ...), declared with their
defaults and help; a parameter file (``config/assembly.yaml``) or ``-p`` overrides them. Values
are validated by the schema when the node is configured and whenever one is set at run time, so
a wrong type or range is refused with the schema's message. Changes take effect at the next
configure. A key given under its old name (``config.MOVED_KEYS``) is read as its new one, and an
unknown key of a schema section is reported, not silently ignored.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.exceptions import InvalidParameterTypeException, ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter

from hand_pose_refiner.config import (
    Config,
    ParameterSpec,
    config_from_ros_parameters,
    node_parameter_specs,
    parameter_specs,
)
from hand_pose_refiner.config_moved_keys import moved_keys_in
from hand_pose_refiner.errors import ConfigError
from hand_pose_refiner.filters.stats import RejectionStats
from hand_pose_refiner.resources import find_share_file
from hand_pose_refiner.ros.diagnostics import StageMonitor, diagnostic_array

Item = TypeVar("Item")
FASTDDS_PROFILE = "config/fastdds_shm.xml"


class LatestWorker(Generic[Item]):
    """Processes the newest submitted item on its own thread; older unprocessed ones are dropped.

    A camera can deliver faster than a model runs; queueing would only add latency, so a frame
    that a newer one replaces before processing is counted as ``superseded`` and skipped.
    """

    def __init__(self, name: str, process: Callable[[Item], None], stats: RejectionStats,
                 on_error: Callable[[BaseException], None]) -> None:
        self._process = process
        self._stats = stats
        self._on_error = on_error
        self._slot: Item | None = None
        self._condition = threading.Condition()
        self._running = True
        self._busy = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: Item) -> None:
        with self._condition:
            if self._slot is not None:
                self._stats.reject("superseded", 1, "a newer frame arrived before this one was processed")
            self._slot = item
            self._condition.notify()

    def idle(self) -> bool:
        """Nothing waiting and nothing being processed."""
        with self._condition:
            return self._slot is None and not self._busy

    def stop(self) -> None:
        with self._condition:
            self._running = False
            self._condition.notify()
        self._thread.join(timeout=5.0)

    def _loop(self) -> None:
        while True:
            with self._condition:
                while self._running and self._slot is None:
                    self._condition.wait()
                if not self._running:
                    return
                item, self._slot, self._busy = self._slot, None, True
                assert item is not None  # the wait above ends only with an item or not running
            try:
                self._process(item)
            except Exception as exc:  # a bad frame must never stop the node
                self._on_error(exc)
            finally:
                with self._condition:
                    self._busy = False


def _descriptor(spec: ParameterSpec) -> ParameterDescriptor:
    bounds = []
    if spec.choices:
        bounds.append("choices: " + ", ".join(spec.choices))
    if spec.min is not None:
        bounds.append(f">= {spec.min:g}")
    if spec.max is not None:
        bounds.append(f"<= {spec.max:g}")
    suffix = f" [{'; '.join(bounds)}]" if bounds else ""
    return ParameterDescriptor(description=spec.help + suffix)


class HandPoseNode(LifecycleNode):
    """A lifecycle node whose parameters are the config schema, with diagnostics.

    Subclasses implement :meth:`setup` (configure: create publishers and core objects from the
    validated config), :meth:`start` / :meth:`stop` (activate / deactivate: subscriptions) and
    :meth:`teardown` (cleanup).
    """

    def __init__(self, node_name: str, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.stats = RejectionStats(node_name, logger=None)
        self.monitor = StageMonitor(self.get_fully_qualified_name(), self.stats)
        self.config: Config | None = None
        self._declare_schema_parameters()
        self.declare_parameter("autostart", False, ParameterDescriptor(
            description="configure and activate on start (without a lifecycle manager)"))
        self.declare_parameter("diagnostics_period_s", 1.0, ParameterDescriptor(
            description="seconds between /diagnostics messages; 0 disables them"))
        self.add_on_set_parameters_callback(self._validate_new_parameters)
        self._diagnostics_publisher = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        period = float(self.get_parameter("diagnostics_period_s").value)
        self._diagnostics_timer = self.create_timer(period, self._publish_diagnostics) if period > 0 else None
        self._logged_reasons: set[str] = set()
        self._active_subscriptions: list[Any] = []  # not _subscriptions: rclpy's Node has one
        self._active_workers: list[LatestWorker[Any]] = []

    # -- parameters ----------------------------------------------------------------------------

    def _declare_schema_parameters(self) -> None:
        """Declare every node key of the schema (offline-only sections, such as refinement, are
        neither declared nor read: their defaults stand)."""
        self._read_moved_parameters()
        for spec in node_parameter_specs():
            default = list(spec.default) if isinstance(spec.default, tuple) else spec.default
            try:
                self.declare_parameter(spec.name, default, _descriptor(spec))
            except (InvalidParameterTypeException, ParameterException) as exc:
                raise ConfigError(f"parameter {spec.name} of node {self.get_name()}: {exc}; expected "
                                  f"{type(default).__name__} like {default!r}") from exc

    def _given_parameters(self) -> dict[str, Parameter[Any]]:
        """The values given to this node at start (parameter files, ``-p``), by name: rclpy keeps
        them in ``Node._parameter_overrides`` and applies them when a parameter is declared."""
        given = getattr(self, "_parameter_overrides", None)
        return given if isinstance(given, dict) else {}

    def _read_moved_parameters(self) -> None:
        """A value given under a moved key's old name is given under its new name (a warning says
        so); both names at once is a :class:`ConfigError`. Unknown keys of schema sections are
        warned about: they would be ignored."""
        given = self._given_parameters()
        for old_name, new_name in moved_keys_in(set(given), f"node {self.get_name()}"):
            given[new_name] = Parameter(new_name, value=given.pop(old_name).value)
            self.get_logger().warning(f"parameter {old_name} is now {new_name}; read as that (rename it "
                                      f"in the parameter file)")
        specs = parameter_specs()
        sections = {spec.section for spec in specs if not spec.offline}
        known = {spec.name for spec in specs}
        for name in sorted(given):
            if name.partition(".")[0] in sections and name not in known:
                self.get_logger().warning(f"unknown parameter {name} is ignored (config show lists the keys)")

    def schema_parameters(self) -> dict[str, Any]:
        """Current values of the schema parameters, as a flat ``section.key`` mapping."""
        return {spec.name: self.get_parameter(spec.name).value for spec in node_parameter_specs()}

    def _validate_new_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        values = self.schema_parameters()
        for parameter in parameters:
            if parameter.name in values:
                values[parameter.name] = parameter.value
        try:
            config_from_ros_parameters(values, f"node {self.get_name()}")
        except ConfigError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    # -- lifecycle -----------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.config = config_from_ros_parameters(self.schema_parameters(), f"node {self.get_name()}")
            self.setup(self.config)
        except Exception as exc:
            self.get_logger().error(f"cannot configure: {exc}")
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info("configured")
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        assert self.config is not None
        self.start(self.config)
        self.get_logger().info("active")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.teardown()
        self.config = None
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop()
        self.teardown()
        return super().on_shutdown(state)

    def autostart(self) -> bool:
        """Configure and activate when the ``autostart`` parameter is set; False on failure."""
        if not self.get_parameter("autostart").value:
            return True
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            return False
        return self.trigger_activate() == TransitionCallbackReturn.SUCCESS

    def setup(self, config: Config) -> None:
        """Create publishers and core objects (configure)."""

    def start(self, config: Config) -> None:
        """Create subscriptions (activate)."""

    def stop(self) -> None:
        """Destroy what :meth:`subscribe` and :meth:`start_worker` made (deactivate)."""
        for subscription in self._active_subscriptions:
            self.destroy_subscription(subscription)
        self._active_subscriptions.clear()
        for worker in self._active_workers:
            worker.stop()
        self._active_workers.clear()

    def teardown(self) -> None:
        """Release what :meth:`setup` created (cleanup)."""

    # -- helpers -------------------------------------------------------------------------------

    def start_worker(self, process: Callable[[Item], None]) -> LatestWorker[Item]:
        """A :class:`LatestWorker` running ``process`` until :meth:`stop`."""
        worker: LatestWorker[Item] = LatestWorker(self.get_name(), process, self.stats, self.report_error)
        self._active_workers.append(worker)
        return worker

    def subscribe(self, message_type: Any, topic: str, callback: Callable[[Any], None], qos: Any) -> Any:
        """A subscription that :meth:`stop` destroys again (subscriptions live while active)."""
        subscription = self.create_subscription(message_type, topic, callback, qos)
        self._active_subscriptions.append(subscription)
        return subscription

    def drop(self, reason: str, detail: str = "") -> None:
        """Count a dropped input and log the first one of each reason."""
        self.stats.reject(reason, 1, detail)
        if reason not in self._logged_reasons:
            self._logged_reasons.add(reason)
            self.get_logger().warning(f"dropped input ({reason}){': ' + detail if detail else ''}; "
                                      f"further ones are counted on /diagnostics")

    def report_error(self, exc: BaseException) -> None:
        self.drop(f"error_{type(exc).__name__}", str(exc))

    def lifecycle_state(self) -> str:
        """The label of the node's lifecycle state (``unconfigured``, ``inactive``, ``active`` ...).

        rclpy keeps the state in the node's state machine and offers no public getter for it (its
        own get_state service reads the same attribute); ``unknown`` if a later rclpy moves it, so
        that /diagnostics keeps publishing (test_ros_diagnostics fails on it).
        """
        machine = getattr(self, "_state_machine", None)
        return str(machine.current_state[1]) if machine is not None else "unknown"

    def _publish_diagnostics(self) -> None:
        status = self.monitor.status(hardware_id=self.get_name(), lifecycle_state=self.lifecycle_state())
        self._diagnostics_publisher.publish(diagnostic_array(self.get_clock().now().to_msg(), [status]))


def use_shipped_fastdds_profile() -> None:
    """Point Fast DDS at the shipped profile (large shared-memory segment) unless the user chose one.

    Must run before ``rclpy.init``: the participant reads it when it is created.
    """
    if "FASTDDS_DEFAULT_PROFILES_FILE" not in os.environ:
        with contextlib.suppress(FileNotFoundError):
            os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(find_share_file(FASTDDS_PROFILE))


def run_nodes(factories: Sequence[Callable[[], HandPoseNode]], args: Sequence[str] | None = None) -> int:
    """Create nodes, autostart them, and spin until shutdown.

    The work is multi-threaded: each model node infers on its own :class:`LatestWorker` thread
    (torch releases the GIL), while one executor thread runs the short ROS callbacks. rclpy's
    MultiThreadedExecutor is not used on purpose: it re-polls callbacks that a busy callback
    group cannot run yet, and that spinning starved inference (measured on the 4-node graph, 2
    cores, 640x480 at 30 Hz: 20 of 300 frames detected against 300 of 300 with this setup).
    """
    use_shipped_fastdds_profile()
    rclpy.init(args=None if args is None else list(args))
    nodes: list[HandPoseNode] = []
    try:
        nodes = [factory() for factory in factories]
        if not all(node.autostart() for node in nodes):
            return 1
        executor = SingleThreadedExecutor()
        for node in nodes:
            executor.add_node(node)
        executor.spin()
    except ConfigError as exc:
        print(f"hand_pose_refiner: error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        for node in nodes:
            node.stop()
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


def main_for(node_class: Callable[[], HandPoseNode]) -> Callable[[], None]:
    """A console-script ``main`` that runs one node class."""

    def main() -> None:
        exit_without_teardown(run_nodes([node_class], sys.argv))

    return main


def exit_without_teardown(code: int) -> None:
    """Leave the process once the nodes are destroyed and rclpy is shut down.

    The interpreter's own teardown then only frees memory, and freeing torch's objects takes
    seconds: longer than ``ros2 launch`` waits after Ctrl-C before it escalates to SIGTERM. So the
    logs and streams are flushed and the process ends at once with ``code``.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def elapsed_since(start: float) -> float:
    return time.perf_counter() - start
