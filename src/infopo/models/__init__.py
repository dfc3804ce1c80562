"""Loading models: the embedded SmolLM2-135M-Instruct and the forward pass that scores tokens."""
