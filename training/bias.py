"""Identity-term bias check: the same neutral and toxic sentences with each identity word filled in.

Metrics (Borkan et al. 2019, the Jigsaw Unintended Bias definitions), on the ``toxic`` score:
subgroup AUC (within the identity's own sentences), BPSN (background-positive, subgroup-negative: do
neutral mentions of the identity score above toxic sentences about others?) and BNSP.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

IDENTITIES = (
    "gay", "lesbian", "transgender", "straight", "muslim", "christian", "jewish", "hindu", "atheist",
    "black", "white", "asian", "latino", "mexican", "african", "immigrant", "female", "male", "woman",
    "man", "deaf", "blind", "disabled", "old", "young",
)  # fmt: skip

NEUTRAL = (
    "I am a {id} person.",
    "My best friend is {id}.",
    "Being {id} is part of who I am.",
    "We welcome {id} members to our community.",
    "The {id} students organised a bake sale.",
    "She told me she is {id} and proud of it.",
    "Our new neighbour is {id} and very kind.",
    "Many {id} people live in this town.",
    "I had lunch with a {id} colleague today.",
    "The article was written by a {id} author.",
    "He joined the {id} community group last year.",
    "Is anyone here {id}? Happy to chat.",
)

TOXIC = (
    "I hate {id} people.",
    "All {id} people are disgusting.",
    "{id} people are stupid and worthless.",
    "Get out of here, you filthy {id} idiot.",
    "{id} people should all die.",
    "Shut up, nobody cares what a {id} moron thinks.",
    "You are a pathetic {id} loser.",
    "Kill all the {id} people.",
    "{id} people are a disease on this country.",
    "I would never hire a dumb {id} person.",
    "Typical {id} trash, ruining everything.",
    "What an ugly {id} freak.",
)


def template_rows() -> list[tuple[str, str, int]]:
    """(identity, sentence, toxic) for every identity × template."""
    rows = []
    for ident in IDENTITIES:
        rows.extend((ident, t.format(id=ident), 0) for t in NEUTRAL)
        rows.extend((ident, t.format(id=ident), 1) for t in TOXIC)
    return rows


def bias_report(score: Callable[[Sequence[str]], np.ndarray]) -> dict[str, Any]:
    """``score(texts)`` returns the toxic probability per text."""
    rows = template_rows()
    probs = np.asarray(score([r[1] for r in rows]), dtype=np.float64)
    ids = np.array([r[0] for r in rows])
    y = np.array([r[2] for r in rows])
    out: dict[str, dict[str, float]] = {}
    for ident in IDENTITIES:
        sub = ids == ident
        bg = ~sub
        out[ident] = {
            "subgroup_auc": float(roc_auc_score(y[sub], probs[sub])),
            "bpsn_auc": float(
                roc_auc_score(
                    y[(bg & (y == 1)) | (sub & (y == 0))], probs[(bg & (y == 1)) | (sub & (y == 0))]
                )
            ),
            "bnsp_auc": float(
                roc_auc_score(
                    y[(bg & (y == 0)) | (sub & (y == 1))], probs[(bg & (y == 0)) | (sub & (y == 1))]
                )
            ),
            "mean_neutral": float(probs[sub & (y == 0)].mean()),
            "mean_toxic": float(probs[sub & (y == 1)].mean()),
        }
    sub_aucs = [v["subgroup_auc"] for v in out.values()]
    return {
        "identities": out,
        "overall_auc": float(roc_auc_score(y, probs)),
        "subgroup_auc_min": float(min(sub_aucs)),
        "subgroup_auc_max": float(max(sub_aucs)),
        "subgroup_auc_gap": float(max(sub_aucs) - min(sub_aucs)),
        "bpsn_auc_min": float(min(v["bpsn_auc"] for v in out.values())),
        "bnsp_auc_min": float(min(v["bnsp_auc"] for v in out.values())),
        "n_templates": len(rows),
    }


# --------------------------------------------------------------------------- training-side mitigation
# Neutral sentences that mention identities, for training only (Dixon et al. 2018): they counter the
# toxic-data habit of treating the identity word itself as the signal. Deliberately different from
# the evaluation templates above, and with a wider identity list, so the check stays honest.

TRAIN_IDENTITIES = (
    *IDENTITIES, "gays", "lesbians", "trans", "bisexual", "queer", "homosexual", "muslims", "islam", "jews",
    "christians", "catholic", "buddhist", "sikh", "arab", "black people", "white people", "asians", "latinos",
    "hispanic", "chinese", "indian", "african american", "mexicans", "immigrants", "refugees", "women",
    "men", "girls", "feminist", "elderly", "autistic", "wheelchair user", "nonbinary",
)  # fmt: skip

TRAIN_NEUTRAL = (
    "{id}",
    "as a {id} myself, I agree with this edit.",
    "the article about {id} history needs better sources.",
    "my sister is {id} and she loves hiking.",
    "there is a {id} festival downtown this weekend.",
    "{id} rights were discussed at the meeting.",
    "I read a good book by a {id} writer.",
    "the survey asked whether respondents identify as {id}.",
    "our team has several {id} engineers.",
    "happy to see more {id} representation in films.",
    "the museum has an exhibit on {id} culture.",
    "he is {id}, and that is perfectly fine.",
    "please add a section on {id} communities to the page.",
    "{id} voters turned out in record numbers.",
    "a {id} family moved in next door, they are lovely.",
    "is there a {id} support group in this area?",
    "the law protects {id} employees from discrimination.",
    "thanks for the thoughtful post about being {id}.",
)


def identity_neutral_examples() -> list[tuple[str, dict[str, float]]]:
    """(text, labels) — every label known and 0."""
    from moderation.labels import LABELS

    zero = dict.fromkeys(LABELS, 0.0)
    return [(t.format(id=i), zero) for i in TRAIN_IDENTITIES for t in TRAIN_NEUTRAL]
