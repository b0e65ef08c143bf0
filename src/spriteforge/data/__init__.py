"""Datasets: named archives, the user's folders, the built-in procedural set, augmentation."""
