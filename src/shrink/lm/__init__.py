"""Language-model family (config `task: lm`): cleaning, tokenizers, four architectures with one
training loop, perplexity and speed metrics, long-sequence sorting and ARC-Easy."""
