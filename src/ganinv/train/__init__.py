"""Training code used to build the bundled models (GANs, classifier)."""
