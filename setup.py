"""pip installation of hand_pose_refiner (the path for machines without a system ROS 2).

On a ROS 2 cell, colcon builds the package with CMakeLists.txt (build type ament_cmake), which
also generates the message types. Here, scripts/setup.sh generates those first, then runs pip.
"""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "hand_pose_refiner"

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Reliable hand poses for robot cells, gloved hands included, over ROS 2",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    # the packaged activity model (activity.checkpoint empty) and its training data's licence
    package_data={PACKAGE: ["py.typed", "activity/weights/*.safetensors", "activity/weights/NOTICE"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/config", glob("config/*")),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/msg", glob("msg/*.msg")),
    ],
    install_requires=[
        "numpy>=1.24",
        "PyYAML>=6",
        "scipy>=1.10",
        "opencv-python-headless>=4.8",
        "rosbags>=0.10,<0.12",  # ros/bags.py TruncatedMcap reads McapReader internals
        "pycocotools>=2.0.7",
        "torch>=2.3",
        "openvino>=2024.0",  # the MediaPipe port's fast CPU inference (mediapipe.runtime)
    ],
    extras_require={
        "test": ["pytest>=8", "hypothesis>=6", "ruff>=0.6", "mypy>=1.10"],
        # Replay on a Ray cluster (scripts/requirements-cluster.txt pins the whole set).
        "cluster": ["ray[data]==2.60.0"],
        # The OpenMMLab backend (models.backend: mmlab). On a machine like the CI's, use
        # `bash scripts/setup.sh --mmlab` instead: it pins torch 2.14.1 + torchvision, builds mmcv
        # 2.1.0 with its ops from source, and installs mmpose 1.3.2 with --no-deps (its chumpy
        # dependency does not build on Python 3.11); scripts/requirements-mmlab*.txt pin the rest.
        "mmlab": ["torchvision", "mmengine>=0.10,<0.11", "mmcv>=2.0.0rc4,<2.2.0", "mmdet>=3.3,<3.4",
                  "json-tricks", "munkres", "xtcocotools>=1.12", "shapely", "terminaltables"],
    },
    entry_points={"console_scripts": [
        "hand-pose-refiner = hand_pose_refiner.cli:main",
        # The nodes (names as in hand_pose_refiner.ros.nodes.NODE_EXECUTABLES and CMakeLists.txt).
        "hand_detector = hand_pose_refiner.ros.nodes.detector:main",
        "hand_pose_estimator = hand_pose_refiner.ros.nodes.pose_estimator:main",
        "spatial_filter = hand_pose_refiner.ros.nodes.spatial_filter:main",
        "temporal_filter = hand_pose_refiner.ros.nodes.temporal_filter:main",
        "activity_recognizer = hand_pose_refiner.ros.nodes.activity_recognizer:main",
        "pose_overlay = hand_pose_refiner.ros.nodes.pose_overlay:main",
    ]},
)
