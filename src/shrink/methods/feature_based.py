"""Feature-based baseline (BERT paper, Section 5.3 / Table 7): a frozen encoder, token features taken
as the sum of its last four hidden layers, and a small trained tagger on top (BiLSTM or linear)."""

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from transformers.modeling_outputs import TokenClassifierOutput


class FeatureTagger(nn.Module):
    base_model_prefix = "encoder"  # so code that finds the encoder of HF models finds it here too

    def __init__(self, encoder, num_labels, layers=4, head="bilstm", head_hidden=128, dropout=0.1):
        super().__init__()
        if head not in ("bilstm", "linear"):
            raise ValueError(f"head must be bilstm or linear, not {head!r}")
        self.encoder, self.layers, self.head_kind = encoder.requires_grad_(False), layers, head
        self.config = encoder.config
        width = encoder.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        if head == "bilstm":
            self.lstm = nn.LSTM(width, head_hidden, batch_first=True, bidirectional=True)
            width = 2 * head_hidden
        self.classifier = nn.Linear(width, num_labels)

    @property
    def base_model(self):
        return self.encoder

    @classmethod
    def wrap(cls, model, layers=4, head="bilstm", head_hidden=128):
        """A tagger on the encoder of a token-classification model (its own classifier is dropped)."""
        base = getattr(model, model.base_model_prefix)
        tagger = cls(base, model.config.num_labels, layers, head, head_hidden)
        ops = list(getattr(model.config, "shrink_ops", None) or [])
        tagger.config.shrink_ops = ops + [{"op": "feature_based", "layers": layers, "head": head,
                                           "head_hidden": head_hidden}]
        return tagger

    def train(self, mode=True):
        super().train(mode)
        self.encoder.eval()  # frozen features: no dropout inside the encoder
        return self

    def forward(self, input_ids, attention_mask, token_type_ids=None, labels=None, **_):
        with torch.no_grad():
            extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}  # DistilBERT has none
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True,
                                  **extra).hidden_states
            feats = torch.stack(hidden[-self.layers:]).sum(0)
        # bf16 features under autocast are widened to the tagger's own dtype (fp32, or fp64 in a double model);
        # a torch.ao int8 classifier (deployment's pytorch_int8) keeps its weight packed and takes fp32
        weight = self.classifier.weight
        x = self.dropout(feats.to(weight.dtype if isinstance(weight, torch.Tensor) else torch.float32))
        if self.head_kind == "bilstm":
            # packing keeps the backward direction from reading the padding first
            lengths = attention_mask.sum(1).cpu()
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            x, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=x.shape[1])
            x = self.dropout(x)
        logits = self.classifier(x)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        return TokenClassifierOutput(loss=loss, logits=logits)
