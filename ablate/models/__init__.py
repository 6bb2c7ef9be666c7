"""Model code: timm backbones, context heads, DeepLabv3+ decoder. Knows nothing about studies.

This package's ``__init__`` imports nothing so that ``ablate.models.params`` (torch-free) stays cheap to import.
"""
