"""Comparison tables, statistics and the study report, made from the files a study's runs leave (torch-free)."""
