"""Translation task: parallel corpus, subword vocabulary, encoder-decoder Transformer, BLEU, encoder-head pruning."""
