"""Tag raw text with an exported model folder (results/deploy/<model>): text -> words -> word pieces
-> ONNX Runtime -> one tag per word -> entity spans with character offsets.

    python -m shrink.ner.serve results/deploy/teacher "EU rejects German call to boycott British lamb ."
    echo "Peter Blackburn lives in Brussels" | python -m shrink.ner.serve results/deploy/teacher -

Prints one JSON object per input line: {"text", "entities": [{"type", "start", "end", "text"}]}.
Words are split as CoNLL-2003 splits them (runs of letters and digits, each other symbol alone);
a line longer than the model's window is tagged in overlapping windows, as in training.
"""

import argparse
import json
import re
import sys
from pathlib import Path

WORD = re.compile(r"\w+|[^\w\s]")
DEFAULT_FILE = "model.onnx"


class Tagger:
    def __init__(self, folder, model_file=DEFAULT_FILE, threads=1):
        from transformers import AutoTokenizer

        from ..core.onnx_export import OnnxLogits
        from .deploy import ONNX_FILES, WINDOWS

        folder = Path(folder)
        if not (folder / model_file).is_file():
            raise FileNotFoundError(f"{folder / model_file}: no such model (an export folder holds "
                                    f"{', '.join(ONNX_FILES.values())}, those its deploy.runtimes asked for)")
        self.labels = json.loads((folder / "labels.json").read_text())
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.model = OnnxLogits(folder / model_file, threads)
        windows = json.loads((folder / WINDOWS).read_text())  # as the training data was tokenized
        self.max_length, self.stride = windows["max_length"], windows["stride"]

    def tag(self, text):
        from datasets import Dataset
        from seqeval.metrics.sequence_labeling import get_entities

        from .conll import Sentence
        from .metrics import predict_tags
        from .tokens import encode_split

        spans = [(m.start(), m.end()) for m in WORD.finditer(text)]
        if not spans:
            return {"text": text, "entities": []}
        words = [text[a:b] for a, b in spans]
        # encode_split needs a tag per word to align; any label works, predictions do not read it
        sentence = Sentence(tokens=words, tags=[self.labels[0]] * len(words), line=1)
        rows = encode_split([sentence], self.tokenizer, self.labels, self.max_length, False, self.stride)
        tags = predict_tags(self.model, Dataset.from_dict(rows), self.tokenizer, self.labels)[0]
        entities = []
        for kind, first, last in get_entities(tags):
            start, end = spans[first][0], spans[last][1]
            entities.append({"type": kind, "start": start, "end": end, "text": text[start:end]})
        return {"text": text, "entities": entities}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder", help="an export folder, e.g. results/deploy/teacher")
    p.add_argument("text", nargs="+", help="text to tag; '-' reads one text per line from standard input")
    p.add_argument("--model-file", default=DEFAULT_FILE, help="which ONNX file of the folder (default %(default)s)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    tagger = Tagger(args.folder, args.model_file, args.threads)
    lines = sys.stdin.read().splitlines() if args.text == ["-"] else [" ".join(args.text)]
    for line in lines:
        print(json.dumps(tagger.tag(line), ensure_ascii=False))


if __name__ == "__main__":
    main()
