"""Rosbag replay and iterative self-supervised refinement (arXiv 2307.03007), ROS-free.

``inputs`` reads recordings, ``replay`` runs the models and the filters over them and writes a
COCO dataset, ``refine`` retrains the models on it round after round, ``report`` shows a person
what each round did. ``distributed`` runs a replay's shards on a Ray cluster (optional extra).
``cli`` registers the ``replay`` and ``refine`` subcommands.
"""
