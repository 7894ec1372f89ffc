"""Validation splits carved out of training data by source photo.

A model must not be chosen on images that share a photo with its training images: it would
score by recognising the background. CASIA names carry their sources
(``Sp_D_CND_A_pla0005_pla0023_0281`` is made from photos pla0005 and pla0023; ``Au_pla_0005``
is pla0005); images linked through a shared source, directly or through a chain, form one
group, and whole groups go to one side. Names without a recognised source are their own group.
"""

from __future__ import annotations

import re

import numpy as np

from ..errors import ConfigError, DataError
from .samples import Dataset, Sample

_CASIA_SPLICE = re.compile(r"^Sp_[A-Z]_[A-Z]{3}_[A-Z]_([a-z]{3}\d{4,5})_([a-z]{3}\d{4,5})_")
_CASIA_AUTHENTIC = re.compile(r"^Au_([a-z]{3})_(\d{4,5})$")


def source_photos(name: str) -> tuple[str, ...]:
    """The source photos an image name declares (CASIA conventions); the name itself otherwise."""
    if match := _CASIA_SPLICE.match(name):
        return tuple(dict.fromkeys(match.groups()))
    if match := _CASIA_AUTHENTIC.match(name):
        return (match.group(1) + match.group(2),)
    return (name,)


def source_groups(names: list[str]) -> list[int]:
    """Group id per name: names linked by a shared source photo (transitively) share a group."""
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        while parent.setdefault(key, key) != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    sources = [source_photos(n) for n in names]
    for photos in sources:
        for other in photos[1:]:
            parent[find(other)] = find(photos[0])
    roots: dict[str, int] = {}
    return [roots.setdefault(find(photos[0]), len(roots)) for photos in sources]


def split_by_source(dataset: Dataset, val_fraction: float, seed: int = 0) -> tuple[Dataset, Dataset]:
    """(train, validation): whole source groups drawn at random until ``val_fraction`` of the
    tampered images (and about that fraction of the authentic ones) are in validation."""
    if not 0 < val_fraction < 1:
        raise ConfigError(f"val_fraction must be in (0, 1), got {val_fraction}")
    samples = list(dataset)
    groups = source_groups([s.name for s in samples])
    members: dict[int, list[Sample]] = {}
    for sample, group in zip(samples, groups, strict=True):
        members.setdefault(group, []).append(sample)
    order = np.random.default_rng(seed).permutation(len(members))
    keys = list(members)
    wanted = {True: val_fraction * len(dataset.tampered), False: val_fraction * len(dataset.authentic)}
    taken = {True: 0, False: 0}
    val_groups: set[int] = set()
    for index in order:
        group = members[keys[index]]
        counts = {kind: sum(s.is_tampered is kind for s in group) for kind in (True, False)}
        # take the group if it moves a side that is still short of its quota, and overshoots neither by much
        short = [kind for kind in (True, False) if counts[kind] and taken[kind] < wanted[kind]]
        if short and all(taken[k] + counts[k] <= wanted[k] * 1.1 + 2 for k in (True, False)):
            val_groups.add(keys[index])
            for kind in (True, False):
                taken[kind] += counts[kind]
    val = [s for s, g in zip(samples, groups, strict=True) if g in val_groups]
    train = [s for s, g in zip(samples, groups, strict=True) if g not in val_groups]
    if not val or not train:
        raise DataError(f"{dataset.source}: too few source groups to split off {val_fraction:.0%}")
    return dataset.replace_samples(train), dataset.replace_samples(val)
