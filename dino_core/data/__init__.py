"""Data for DINO pretraining and evaluation: data sets, multi-crop (per-image and batched),
the train loader and the evaluation transform."""

from dino_core.data.base import DataNotFoundError, ImageDataset, adapt_channels, adapt_stats
from dino_core.data.batched import BatchedMultiCrop
from dino_core.data.datasets import load_dataset, parse_split
from dino_core.data.eval_transform import EvalTransform, build_eval_transform, eval_batches
from dino_core.data.loader import TrainLoader, build_train_loader, epoch_permutation
from dino_core.data.multicrop import MultiCropTransform, blur_kernel_size

__all__ = [
    "BatchedMultiCrop",
    "DataNotFoundError",
    "EvalTransform",
    "ImageDataset",
    "MultiCropTransform",
    "TrainLoader",
    "adapt_channels",
    "adapt_stats",
    "blur_kernel_size",
    "build_eval_transform",
    "build_train_loader",
    "epoch_permutation",
    "eval_batches",
    "load_dataset",
    "parse_split",
]
