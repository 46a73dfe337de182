"""BLEU and chrF with sacrebleu, on detokenized text.

sacrebleu applies its own standard tokenization (13a) to plain strings; scoring subword pieces or
pre-tokenized text would give numbers not comparable with anyone else's, so `score` refuses input
that still carries subword markers.
"""

from sacrebleu.metrics import BLEU, CHRF

SUBWORD_MARKERS = ("\u0120", "\u2581", "@@ ")  # byte-level BPE space, SentencePiece space, subword-nmt joiner


def score(hyps, refs):
    """Corpus BLEU and chrF of detokenized hypotheses against one reference each."""
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses for {len(refs)} references")
    marked = next((h for h in hyps if any(m in h for m in SUBWORD_MARKERS)), None)
    if marked is not None:
        raise ValueError(f"hypothesis still holds subword markers, detokenize it first: {marked[:80]!r}")
    bleu, chrf = BLEU(), CHRF()
    b, c = bleu.corpus_score(hyps, [refs]), chrf.corpus_score(hyps, [refs])
    return {"bleu": round(b.score, 2), "chrf": round(c.score, 2), "bleu_signature": str(bleu.get_signature()),
            "chrf_signature": str(chrf.get_signature())}
