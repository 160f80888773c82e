"""Static token tables trained from a store's stored states, on the CPU, without the model (``b2s``)."""
