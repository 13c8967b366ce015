"""Rosbag replay and iterative self-supervised refinement (arXiv 2307.03007), ROS-free.

``inputs`` reads recordings (``input_spec``: what a recording is and how it is read,
``frame_selection``: which frames; ``bag_reader``, ``video_reader``, ``image_folder_reader``:
each kind; ``tuning_test_split``: the two halves of a folder of stills), ``replay`` runs the
models and the filters over them and writes a COCO dataset, ``refine`` retrains the models on it
round after round, ``report`` shows a person what each round did (from ``report_data``, with
``report_figures``, ``report_crops`` and ``report_html``). ``cli`` registers the ``replay`` and
``refine`` subcommands.

A replay's stages: ``shards`` (recordings planned into shards, a shard's frames read),
``inference`` (the models), ``filtering`` (the filter chain), ``stages`` (one shard through the
three), ``assembly`` (the shards' results together), ``export`` (the output files); its options
and results in ``replay_types``, its progress line in ``progress``; ``ray_replay`` runs the shards
as Ray tasks on the cluster ``distributed`` joins (optional extra).

Around ``refine``'s step loop: ``options`` (what a run depends on), ``rounds`` (the threshold
schedule and the decisions), ``evaluation`` (a round's score), ``round_models`` (each round's
weights), ``run_state`` (the typed ``state.json``).

Around them: ``cache`` keeps decoded frames and model predictions, ``records`` writes per-frame
hands (JSON lines, npz), ``anchors`` keeps what the initial models already see in every round's
training set, ``recipe`` reads a config's ``refinement`` section, ``deploy`` writes the run's
``deploy.yaml`` for the live graph, ``overlay_bag`` draws hands into replay bags. ``scoring``
counts a run's true and false hands on stills judged by eye, ``operating_points`` does so for one
round's models at other thresholds.
"""
