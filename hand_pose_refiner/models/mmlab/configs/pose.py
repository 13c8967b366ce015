"""HRNet top-down heatmap pose model for 21 hand keypoints (mmpose 1.x), paper-sized or small.

The paper-sized model is mmpose's ``td-hm_hrnetv2-w18_8xb64-210e_onehand10k-256x256``; the small
one has one module of one block per stage and a 64x64 input (16x16 heatmaps).
"""

from __future__ import annotations

from typing import Any

from hand_pose_refiner.skeleton import BONES, KEYPOINT_NAMES, NUM_KEYPOINTS

MEAN = [123.675, 116.28, 103.53]
STD = [58.395, 57.12, 57.375]


def hand_metainfo() -> dict[str, Any]:
    """mmpose dataset metainfo of this package's 21-keypoint hand (wrist, then base to tip).

    No keypoint has a mirror partner (``swap`` empty): flipping an image of a hand gives a hand
    with the same keypoint order. Sigmas are the OneHand10K ones (0.025 for every keypoint).
    """
    colour = [255, 128, 0]
    return dict(
        dataset_name="hand_pose_refiner_hand",
        keypoint_info={i: dict(name=name, id=i, color=colour, type="upper", swap="")
                       for i, name in enumerate(KEYPOINT_NAMES)},
        skeleton_info={i: dict(link=(KEYPOINT_NAMES[a], KEYPOINT_NAMES[b]), id=i, color=colour)
                       for i, (a, b) in enumerate(BONES.tolist())},
        joint_weights=[1.0] * NUM_KEYPOINTS,
        sigmas=[0.025] * NUM_KEYPOINTS,
    )


def _stage(branches: int, modules: int, blocks: int, channels: tuple[int, ...],
           **extra: Any) -> dict[str, Any]:
    return dict(num_modules=modules, num_branches=branches, block="BASIC", num_blocks=(blocks,) * branches,
                num_channels=channels[:branches], **extra)


def hrnet_topdown(small: bool = False) -> dict[str, Any]:
    """The full mmengine config (model, pipelines, codec) of the hand pose estimator."""
    size, heatmap = (64, 16) if small else (256, 64)
    channels = (18, 36, 72, 144)
    blocks, modules3, modules4 = (1, 1, 1) if small else (4, 4, 3)
    codec = dict(type="MSRAHeatmap", input_size=(size, size), heatmap_size=(heatmap, heatmap),
                 sigma=1 if small else 2)
    concat = sum(channels)
    model = dict(
        type="TopdownPoseEstimator",
        data_preprocessor=dict(type="PoseDataPreprocessor", mean=MEAN, std=STD, bgr_to_rgb=True),
        backbone=dict(
            type="HRNet", in_channels=3,
            extra=dict(
                stage1=dict(num_modules=1, num_branches=1, block="BOTTLENECK", num_blocks=(blocks,),
                            num_channels=(32 if small else 64,)),
                stage2=_stage(2, 1, blocks, channels),
                stage3=_stage(3, modules3, blocks, channels),
                stage4=_stage(4, modules4, blocks, channels, multiscale_output=True),
                upsample=dict(mode="bilinear", align_corners=False))),
        neck=dict(type="FeatureMapProcessor", concat=True),
        head=dict(type="HeatmapHead", in_channels=concat, out_channels=NUM_KEYPOINTS,
                  deconv_out_channels=None, conv_out_channels=(64 if small else concat,),
                  conv_kernel_sizes=(1,), loss=dict(type="KeypointMSELoss", use_target_weight=True),
                  decoder=codec),
        test_cfg=dict(flip_test=not small, flip_mode="heatmap", shift_heatmap=True))
    train_pipeline = [
        dict(type="LoadImage"),
        dict(type="GetBBoxCenterScale"),
        dict(type="RandomFlip", direction="horizontal"),
        dict(type="RandomBBoxTransform", rotate_factor=30.0, scale_factor=(0.75, 1.25)),
        dict(type="TopdownAffine", input_size=codec["input_size"]),
        dict(type="GenerateTarget", encoder=codec),
        dict(type="PackPoseInputs"),
    ]
    test_pipeline = [
        dict(type="LoadImage"),
        dict(type="GetBBoxCenterScale"),
        dict(type="TopdownAffine", input_size=codec["input_size"]),
        dict(type="PackPoseInputs"),
    ]
    return dict(default_scope="mmpose", model=model, codec=codec, train_pipeline=train_pipeline,
                test_pipeline=test_pipeline, metainfo=hand_metainfo())
