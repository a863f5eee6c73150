"""Kindred: a self-hosted customer profile engine speaking mParticle's wire formats."""

__all__ = ["__version__"]

__version__ = "0.1.0"
