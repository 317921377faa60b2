"""The shared LLM engine: prompts, model loading, objectives, training, decoding, grounding."""
