"""A Segment-Anything-family model reduced to what box prompting needs (pure nn.Module, no I/O).

SAM, MobileSAM and LiteMedSAM share one prompt encoder / mask decoder design and differ in the
image encoder and input size; this module holds the three parts and the two calls a predictor
makes: encode an image once, decode any number of boxes against that embedding.
"""

from __future__ import annotations

import torch
from torch import nn


class SamPromptModel(nn.Module):
    """Image encoder + prompt encoder + mask decoder, for an ``input_size`` x ``input_size`` canvas."""

    def __init__(self, image_encoder: nn.Module, prompt_encoder: nn.Module, mask_decoder: nn.Module,
                 input_size: int) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        self.input_size = input_size

    @property
    def mask_size(self) -> int:
        """Side of the low-resolution masks the decoder returns (4x the embedding)."""
        return int(self.prompt_encoder.mask_input_size[0])

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Embeddings (B x 256 x h x w) of preprocessed images (B x 3 x S x S)."""
        return self.image_encoder(images)

    def decode(
        self,
        embedding: torch.Tensor,
        boxes: torch.Tensor,
        mask_input: torch.Tensor | None = None,
        multimask: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Low-resolution mask logits (N x K x m x m) and predicted IoUs (N x K) for N boxes.

        ``embedding`` is one image's (1 x 256 x h x w); ``boxes`` are N x 4 (x1, y1, x2, y2) in
        canvas pixels; ``mask_input`` optional N x 1 x m x m logits from a previous pass.
        K is 3 with ``multimask`` else 1.
        """
        sparse, dense = self.prompt_encoder(points=None, boxes=boxes[:, None, :], masks=mask_input)
        return self.mask_decoder(
            image_embeddings=embedding,
            image_pe=self.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
        )
