"""PyTorch adapters of the theory: initializers, models, optimizers, Jacobian spectra, diagnostics."""
