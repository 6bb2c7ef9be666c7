"""Model code: timm backbones, context heads, DeepLabv3+ decoder. Knows nothing about studies or recipes.

``spec`` (the ``model:`` section) and ``heads`` are torch-free; this ``__init__`` imports nothing, so they stay
cheap to import.
"""
