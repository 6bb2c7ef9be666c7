"""Data sets. ``build_datasets`` turns a recipe's ``data:`` block into train and validation sets."""
