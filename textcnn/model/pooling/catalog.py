"""The poolings this project ships, one entry each, registered on import.

Order matters only for display (`--help`, error messages): it is the order the poolings were added.
The forwards' arithmetic is in `functions`, the explanation rules in `attribution`; both import
torch, so they are reached through `_functions()` / `_rules()` on first call and `--help` stays fast.
"""

from __future__ import annotations

import functools
import importlib

from textcnn.model.pooling.registry import Pooling, Slots, register


@functools.cache
def _functions():
    return importlib.import_module("textcnn.model.pooling.functions")


@functools.cache
def _rules():
    return importlib.import_module("textcnn.model.pooling.attribution")


def _winners(config, activations, positions):
    return [(None, _rules().winners(activations, positions))]


register(
    Pooling(
        name="max",
        summary="max over time (Collobert et al. 2011; Kim 2014): each map's strongest window anywhere",
        forward=lambda x, mask, config: _functions().max_pool(x, mask),
        attribution=_winners,
        explained="each pooled value is the activation of its map's winning window (the first on ties)",
    )
)
register(
    Pooling(
        name="avg",
        summary="the mean over the real windows (padding never counts): evidence spread over the sentence",
        forward=lambda x, mask, config: _functions().avg_pool(x, mask),
        attribution=lambda config, activations, positions: [(None, _rules().spread(activations))],
        explained="each pooled value is the mean of its map's real windows, every window at weight 1/n",
    )
)
register(
    Pooling(
        name="kmax",
        summary="the k largest values in sentence order (Kalchbrenner et al. 2014); --k",
        forward=lambda x, mask, config: _functions().kmax_pool(x, mask, config.kmax_k),
        attribution=_winners,
        explained="each of the k slots is the activation of the window the k-max kept there (empty slots are 0)",
        reads=("kmax_k",),
        width=lambda config: config.kmax_k,
        number="kmax_k",
    )
)
register(
    Pooling(
        name="chunk-max",
        summary="the max of each of --chunks equal regions of a sentence's own length",
        forward=lambda x, mask, config: _functions().chunk_max_pool(x, mask, config.chunks),
        attribution=_winners,
        explained="each region's pooled value is the activation of that region's winning window",
        reads=("chunks",),
        width=lambda config: config.chunks,
    )
)
register(
    Pooling(
        name="logsumexp",
        summary="a smooth max, τ·log mean exp(x/τ) (--temperature τ): the max as τ → 0, the mean as τ → ∞",
        forward=lambda x, mask, config: _functions().logsumexp_pool(x, mask, config.temperature),
        attribution=lambda config, activations, positions: [
            (None, _rules().softmax_weights(activations, config.temperature))
        ],
        explained=(
            "logsumexp has no exact split: each window is weighted by softmax(a/τ) over the real windows, "
            "and what that leaves out of the logit is the residual"
        ),
        exact=False,
        reads=("temperature",),
    )
)
register(
    Pooling(
        name="max+avg",
        summary="both summaries side by side: [max | mean] (twice the features)",
        forward=lambda x, mask, config: _functions().max_avg_pool(x, mask),
        attribution=lambda config, activations, positions: [
            ("max", _rules().winners(activations, positions)),
            ("avg", _rules().spread(activations)),
        ],
        explained="the max half is its map's winning window, the avg half every real window at weight 1/n",
        width=lambda config: 2,
    )
)
register(
    Pooling(
        name="local-max",
        summary="the max of each region of --region consecutive windows (Zhang & Wallace 2015, Table 19)",
        forward=lambda x, mask, config: _functions().local_max_pool(
            x, mask, config.region, config.region_slots
        ),
        attribution=_winners,
        explained="each region slot's pooled value is the activation of that region's winning window",
        reads=("region", "region_slots"),
        width=lambda config: config.region_slots,
        number="region",
        slots=Slots("regions", lambda config: config.region),
    )
)
register(
    Pooling(
        name="local-avg",
        summary="the mean of each region of --region consecutive windows (Zhang & Wallace 2015, Table 17)",
        forward=lambda x, mask, config: _functions().local_avg_pool(
            x, mask, config.region, config.region_slots
        ),
        attribution=lambda config, activations, positions: [
            (None, _rules().per_slot_mean(activations, config.region, config.region_slots))
        ],
        explained="each region slot's pooled value is the mean of its real windows, each at weight 1/n of the slot",
        reads=("region", "region_slots"),
        width=lambda config: config.region_slots,
        number="region",
        slots=Slots("regions", lambda config: config.region),
    )
)
register(
    Pooling(
        name="padded-avg",
        summary=(
            "the mean as zero-padded code computes it, padding counting 0: an arm to test why Zhang & "
            "Wallace's average lost to 1-max, not a pooling to use"
        ),
        forward=lambda x, mask, config: _functions().padded_avg_pool(x, mask, config.region_slots),
        attribution=lambda config, activations, positions: [
            (None, _rules().spread(activations, config.region_slots))
        ],
        explained=(
            "each pooled value is its map's real windows over the padded length, every window at weight "
            "1/max(n, padded length)"
        ),
        reads=("region_slots",),
        slots=Slots("windows", lambda config: 1),
    )
)
register(
    Pooling(
        name="learned",
        summary=(
            "a mean weighted by softmax(β·a) with one learned sharpness β per map: the average at β = 0, "
            "the max as β grows (training picks each map's place between them)"
        ),
        forward=lambda x, mask, config, log_sharpness: _functions().learned_pool(x, mask, log_sharpness),
        attribution=lambda config, activations, positions, log_sharpness: [
            (None, _rules().sharpened_weights(activations, log_sharpness))
        ],
        explained=(
            "each pooled value is a weighted mean of its map's real windows, window p at weight "
            "softmax(β·a)_p with the map's learned sharpness β"
        ),
        learned=True,
    )
)
