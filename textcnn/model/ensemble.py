"""K text CNNs of one shape and one vocabulary that predict as one: the mean of their probabilities.

Members differ only in their seed (initial weights, data order, dropout masks); they are trained
together by `textcnn.train.loop.fit_group` and kept stacked as a `ModelGroup`, so a prediction is one
grouped forward pass, not K of them: the per-call costs that dominate a one-text forward (a few
dozen small kernels, Python dispatch) are paid once for all members.

`Ensemble.forward` returns log(mean_k softmax(logits_k)), the log of the averaged probabilities.
A softmax of it gives back those probabilities exactly (they already sum to 1), so everything
that turns a model's logits into predictions (`Classifier`, the service, evaluation) works on an
ensemble unchanged, and the cross-entropy of it is the ensemble's own log loss. Averaging
probabilities rather than logits is the usual choice for deep ensembles (Lakshminarayanan et al.
2017): a member that is confidently wrong is outvoted instead of dominating the sum.

The state dict is the group's (members stacked model-major, `textcnn.model.group`), so an ensemble
of one has the single model's names and shapes.
"""

from __future__ import annotations

import torch

from textcnn.model import output
from textcnn.model.cnn import ModelConfig, TextCNN
from textcnn.model.group import ModelGroup
from textcnn.model.members import Member, ShapedByConfig


class Ensemble(ShapedByConfig, ModelGroup):
    """Members of one shape and one vocabulary; `forward(ids, lengths)` as a `TextCNN`'s, giving
    the log of the members' mean probabilities (B, C)."""

    def __init__(self, config: ModelConfig, members: int, conv_mode: str = "grouped"):
        # One vocabulary for all members: no per-member vocabulary sizes to pad to.
        super().__init__(config, members, None, conv_mode)
        self._member_models: list[TextCNN] | None = None

    @classmethod
    def of(cls, models: list[TextCNN]) -> Ensemble:
        """An ensemble holding copies of `models`' weights (same config, vocabulary size included)."""
        if any(m.config != models[0].config for m in models):
            raise ValueError("ensemble members must share their config (vocabulary included)")
        ensemble = cls(models[0].config, len(models)).to(next(models[0].parameters()).device)
        ensemble.load_models(models)  # as `ModelGroup.from_models` fills a group
        return ensemble

    def member_logits(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Each member's logits (K, B, C) for one batch (B, T), as K single models would give them."""
        K = self.models
        return super().forward(ids.expand(K, *ids.shape), lengths.expand(K, *lengths.shape))

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        # The log of the mean softmax (logsumexp of the log-softmaxes is the same, at twice the cost
        # of the whole forward for one text; the clamp keeps a class every member rules out finite),
        # or, multi-label, the logit of each label's mean sigmoid: textcnn.model.output.
        return output.combine(self.member_logits(ids, lengths), None, self.config.multi_label)

    # -- a bundle's model (textcnn.model.members) ----------------------------------------------

    is_ensemble = True

    def members(self) -> list[Member]:
        """The members as single models, each weighing 1/K in the mean, all in group 0."""
        models = self.member_models()
        return [Member(k, "cnn", model, 1.0 / len(models), 0) for k, model in enumerate(models)]

    def member_models(self) -> list[TextCNN]:
        """The members as single `TextCNN`s (copies, on this ensemble's device), made once: for what
        works member by member, such as `textcnn.inference.explain.explain_text`. Not kept in step with
        later changes to the ensemble's weights."""
        if self._member_models is None:
            device = self.embedding.weight.device
            members = []
            for k in range(self.models):
                model = TextCNN(self.config).to(device)
                self.export(k, model)
                members.append(model.eval())
            self._member_models = members
        return self._member_models

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        self._member_models = None
        return super().load_state_dict(state_dict, strict, assign)

    def _apply(self, fn, recurse=True):  # .to(), .half(), ...: the member copies would go stale
        self._member_models = None
        return super()._apply(fn, recurse)
