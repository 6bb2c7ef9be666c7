"""Training and evaluation of one resolved recipe (a PyTorch loop on Lightning Fabric)."""
