"""An example ablate plugin: importing it registers a head (``strip``), a data set (``bars``) and a timm backbone
(``tiny_resnet``). ablate imports it through the entry point ``ablate.plugins`` (pyproject.toml)."""

from ablate_plugin_example import backbones, data, heads  # noqa: F401 - each registers itself
