"""The built-in heads' modules (torch): one plain ``nn.Module`` per head, in a file named as the head. Each head's
torch-free params class in ``ablate.models.heads`` names its module here by import path (``HeadParams.module``), so
nothing here is imported until a model is built."""
