"""Reference runs that reproduce the paper (data, augmentation, backbones, training, evaluation)."""
