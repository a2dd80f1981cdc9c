"""newsrec offline pipeline: MIND data, models, training, inference, transforms, evaluation."""
