"""dino_core."""
