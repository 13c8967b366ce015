"""package.xml declares the ROS packages the code imports, and only those (rosdep installs them)."""

from __future__ import annotations

import ast
import xml.etree.ElementTree as ElementTree

from support import REPO

# Declared for what they do rather than for an import: the generated messages' runtime.
NOT_IMPORTED = {"rosidl_default_runtime"}
# Modules that come with rclpy itself.
PART_OF_RCLPY = {"rclpy", "rosidl_runtime_py", "rpyutils", "ament_index_python"}
# ROS packages imported by name that are neither message nor interface packages.
ROS_TOOL_PACKAGES = {"launch", "launch_ros", "cv_bridge", "message_filters"}


def imported_top_level_modules() -> set[str]:
    """Top-level modules imported by the package and the launch file (lazy imports included)."""
    sources = [*sorted((REPO / "hand_pose_refiner").rglob("*.py")), REPO / "launch/assembly.launch.py"]
    modules: set[str] = set()
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                modules.add(node.module.split(".")[0])
    return modules


def ros_dependencies(kind: str) -> set[str]:
    root = ElementTree.parse(REPO / "package.xml").getroot()
    names = {element.text for element in root.iter(kind) if element.text}
    return {name for name in names if not name.startswith("python3-")}


def test_every_declared_ros_run_dependency_is_imported():
    declared = ros_dependencies("exec_depend") | ros_dependencies("depend")
    unused = declared - imported_top_level_modules() - NOT_IMPORTED
    assert not unused, f"package.xml declares packages the code never imports: {sorted(unused)}"


def test_every_imported_ros_message_package_is_declared():
    declared = ros_dependencies("exec_depend") | ros_dependencies("depend")
    ros_like = {module for module in imported_top_level_modules()
                if module.endswith(("_msgs", "_interfaces")) or module in ROS_TOOL_PACKAGES}
    missing = ros_like - declared - PART_OF_RCLPY - {"hand_pose_refiner"}
    assert not missing, f"imported but not in package.xml: {sorted(missing)}"
