"""Cascade R-CNN with one class, 'hand' (mmdet 3.x), paper-sized or small.

The paper-sized model is mmdet's ``cascade-rcnn_r50_fpn_1x_coco`` with one class; the small one
swaps in a ResNet-18, narrower FPN and box heads, fewer proposals and a 256x192 input.
"""

from __future__ import annotations

from typing import Any

MEAN = [123.675, 116.28, 103.53]
STD = [58.395, 57.12, 57.375]
HAND_CLASSES = ("hand",)


def _bbox_head(channels: int, fc_channels: int, stds: list[float]) -> dict[str, Any]:
    return dict(type="Shared2FCBBoxHead", in_channels=channels, fc_out_channels=fc_channels,
                roi_feat_size=7, num_classes=len(HAND_CLASSES),
                bbox_coder=dict(type="DeltaXYWHBBoxCoder", target_means=[0.0, 0.0, 0.0, 0.0],
                                target_stds=stds),
                reg_class_agnostic=True,
                loss_cls=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0),
                loss_bbox=dict(type="SmoothL1Loss", beta=1.0, loss_weight=1.0))


def _rcnn_train(iou: float, samples: int) -> dict[str, Any]:
    return dict(assigner=dict(type="MaxIoUAssigner", pos_iou_thr=iou, neg_iou_thr=iou,
                              min_pos_iou=iou, match_low_quality=False, ignore_iof_thr=-1),
                sampler=dict(type="RandomSampler", num=samples, pos_fraction=0.25, neg_pos_ub=-1,
                             add_gt_as_proposals=True),
                pos_weight=-1, debug=False)


def cascade_rcnn(small: bool = False) -> dict[str, Any]:
    """The full mmengine config (model, pipelines, dataset metainfo) of the hand detector."""
    depth, channels, fc_channels = (18, 64, 128) if small else (50, 256, 1024)
    backbone_channels = [64, 128, 256, 512] if small else [256, 512, 1024, 2048]
    proposals, samples = (200, 128) if small else (2000, 512)
    scale = (256, 192) if small else (1333, 800)
    model = dict(
        type="CascadeRCNN",
        data_preprocessor=dict(type="DetDataPreprocessor", mean=MEAN, std=STD, bgr_to_rgb=True,
                               pad_size_divisor=32),
        backbone=dict(type="ResNet", depth=depth, num_stages=4, out_indices=(0, 1, 2, 3),
                      frozen_stages=1, norm_cfg=dict(type="BN", requires_grad=True), norm_eval=True,
                      style="pytorch"),
        neck=dict(type="FPN", in_channels=backbone_channels, out_channels=channels, num_outs=5),
        rpn_head=dict(
            type="RPNHead", in_channels=channels, feat_channels=channels,
            anchor_generator=dict(type="AnchorGenerator", scales=[8], ratios=[0.5, 1.0, 2.0],
                                  strides=[4, 8, 16, 32, 64]),
            bbox_coder=dict(type="DeltaXYWHBBoxCoder", target_means=[0.0, 0.0, 0.0, 0.0],
                            target_stds=[1.0, 1.0, 1.0, 1.0]),
            loss_cls=dict(type="CrossEntropyLoss", use_sigmoid=True, loss_weight=1.0),
            loss_bbox=dict(type="SmoothL1Loss", beta=1.0 / 9.0, loss_weight=1.0)),
        roi_head=dict(
            type="CascadeRoIHead", num_stages=3, stage_loss_weights=[1, 0.5, 0.25],
            bbox_roi_extractor=dict(type="SingleRoIExtractor",
                                    roi_layer=dict(type="RoIAlign", output_size=7, sampling_ratio=0),
                                    out_channels=channels, featmap_strides=[4, 8, 16, 32]),
            bbox_head=[_bbox_head(channels, fc_channels, [0.1, 0.1, 0.2, 0.2]),
                       _bbox_head(channels, fc_channels, [0.05, 0.05, 0.1, 0.1]),
                       _bbox_head(channels, fc_channels, [0.033, 0.033, 0.067, 0.067])]),
        train_cfg=dict(
            rpn=dict(assigner=dict(type="MaxIoUAssigner", pos_iou_thr=0.7, neg_iou_thr=0.3,
                                   min_pos_iou=0.3, match_low_quality=True, ignore_iof_thr=-1),
                     sampler=dict(type="RandomSampler", num=256, pos_fraction=0.5, neg_pos_ub=-1,
                                  add_gt_as_proposals=False),
                     allowed_border=0, pos_weight=-1, debug=False),
            rpn_proposal=dict(nms_pre=proposals, max_per_img=proposals,
                              nms=dict(type="nms", iou_threshold=0.7), min_bbox_size=0),
            rcnn=[_rcnn_train(0.5, samples), _rcnn_train(0.6, samples), _rcnn_train(0.7, samples)]),
        test_cfg=dict(
            rpn=dict(nms_pre=proposals // 2, max_per_img=proposals // 2,
                     nms=dict(type="nms", iou_threshold=0.7), min_bbox_size=0),
            rcnn=dict(score_thr=0.05, nms=dict(type="nms", iou_threshold=0.5), max_per_img=20)))
    train_pipeline = [
        dict(type="LoadImageFromFile"),
        dict(type="LoadAnnotations", with_bbox=True),
        dict(type="Resize", scale=scale, keep_ratio=True),
        dict(type="RandomFlip", prob=0.5),
        dict(type="PackDetInputs"),
    ]
    test_pipeline = [
        dict(type="LoadImageFromNDArray"),
        dict(type="Resize", scale=scale, keep_ratio=True),
        dict(type="PackDetInputs",
             meta_keys=("img_id", "img_path", "ori_shape", "img_shape", "scale_factor")),
    ]
    return dict(default_scope="mmdet", model=model, train_pipeline=train_pipeline,
                test_pipeline=test_pipeline, metainfo=dict(classes=HAND_CLASSES))
