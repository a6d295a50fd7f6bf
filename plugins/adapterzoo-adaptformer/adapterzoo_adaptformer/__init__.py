"""AdaptFormer (Chen et al., NeurIPS 2022) as an adapterzoo method.

This module only declares the method; ``config.py``, ``layer.py`` and ``model.py`` are imported on first use.
"""

from adapterzoo.method import Method

METHOD = Method(
    name="adaptformer",
    config="adapterzoo_adaptformer.config:AdaptFormerConfig",
    tuner="adapterzoo_adaptformer.model:AdaptFormerModel",
    tasks=("image-classification",),
    summary="AdaptFormer: a scaled ReLU bottleneck beside every block's MLP, on the residual stream; not mergeable.",
    head_init="adapterzoo_adaptformer.model:init_head",
    tiny_options={"bottleneck": 4},
    benchmarks="adapterzoo_adaptformer.benchmarks:rows",
    # The reference's image recipe (ShoufaChen/AdaptFormer, main_image.py and util/lr_sched.py): SGD with momentum 0.9
    # and no weight decay, lr = blr x total batch / 256 with blr 0.1 (128 per GPU x 8 GPUs: lr 0.4), 100 epochs of
    # which 20 warm up linearly, then a half-cycle cosine to 0, per iteration; random resized crops and flips. The
    # batch size is left to the user's hardware: base_lr keeps the reference's lr per example.
    recipe={
        "optimizer": "sgd",
        "momentum": 0.9,
        "base_lr": 0.1,
        "weight_decay": 0.0,
        "scheduler": "cosine",
        "warmup_ratio": 0.2,
        "epochs": 100,
        "augment": True,
    },
)
