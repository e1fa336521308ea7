"""Convert a released ViLReF / Chinese-CLIP / RET-CLIP checkpoint for vilref_mm.

Examples::

    # the whole model, for `load_from` / `init_cfg` of configs/vilref/pretrain_vitb.py
    python tools/model_converters/vilref_to_mm.py clip_cn_vit-b-16.pt checkpoints/cnclip_vitb16.pth
    # the image encoder only, for init_cfg=dict(type='Pretrained', checkpoint=...) of a backbone
    python tools/model_converters/vilref_to_mm.py ViLReF_ViT.pt \
        checkpoints/vilref_vit-b16_backbone.pth --backbone-only
    # Chinese-CLIP's ViT-H/14 (16 heads of 80: the default for a 1280-wide ViT) and the rest
    # of the family, detected from the shapes (docs/model.md)
    python tools/model_converters/vilref_to_mm.py clip_cn_vit-h-14.pt checkpoints/cnclip_vith14.pth
    # a .safetensors destination writes safetensors (read wherever a .pth is)
    python tools/model_converters/vilref_to_mm.py ViLReF_ViT.pt \
        checkpoints/vilref_vitb16.safetensors

The logic lives in :mod:`vilref_mm.models.convert`.
"""
import argparse
import sys

from vilref_mm.models.convert import CheckpointConversionError, convert_checkpoint


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert a released ViLReF / Chinese-CLIP / RET-CLIP checkpoint '
        '(read with torch.load(weights_only=True)) into a float32, tensor-only vilref_mm '
        'checkpoint.')
    parser.add_argument('src', help='released checkpoint (.pt / .pth)')
    parser.add_argument('dst', help='output checkpoint path (.pth, or .safetensors for the '
                        'safetensors format)')
    parser.add_argument(
        '--backbone-only',
        action='store_true',
        help='write only the image encoder under the backbone\'s own parameter names (for '
        "a classification / segmentation backbone's init_cfg=dict(type='Pretrained'))")
    parser.add_argument(
        '--vision-head-width',
        type=int,
        help='width of one attention head of the image encoder, which the weights do not '
        'tell (default: 80 for a 1280-wide ViT, as Chinese-CLIP ViT-H/14; else 64)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        converted = convert_checkpoint(args.src, args.dst, backbone_only=args.backbone_only,
                                       vision_head_width=args.vision_head_width)
    except (CheckpointConversionError, FileNotFoundError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    cfg = converted.model_cfg
    bert_cfg = cfg['text_encoder']['bert_cfg']
    written = converted.backbone_state_dict if args.backbone_only else converted.state_dict
    print(f"image encoder: {cfg['image_encoder']}")
    print(f"text encoder: BERT {bert_cfg['num_hidden_layers']} layers, "
          f"width {bert_cfg['hidden_size']}; embedding dimension {cfg['embed_dims']}")
    if converted.unmatched:
        print(f'ignored {len(converted.unmatched)} unmatched keys: {converted.unmatched}')
    print(f'wrote {len(written)} tensors to {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
