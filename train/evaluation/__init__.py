"""Evaluation: CMC/mAP/mINP, distances, k-reciprocal re-ranking, feature extraction, pictures."""

from .metrics import evaluate_rank

__all__ = ["evaluate_rank"]
