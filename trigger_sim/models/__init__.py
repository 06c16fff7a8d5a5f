"""Model forward passes shared by the Triton models and the workers' local fallback."""
