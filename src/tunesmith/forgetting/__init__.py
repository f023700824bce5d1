"""Control of catastrophic forgetting: measure what the model keeps on a retain set; EWC, L2-SP, replay."""
